package model

import (
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// gatewayServerRef is one server of one applied Gateway.
type gatewayServerRef struct {
	gw    *networking.Gateway
	index int
	srv   *networkingapi.Server
}

func (r gatewayServerRef) String() string {
	return fmt.Sprintf("Gateway %s/%s (spec.servers[%d], %s)", r.gw.Namespace, r.gw.Name, r.index, strings.ToUpper(r.srv.GetPort().GetProtocol()))
}

// gatewayPortClass is what a gateway server needs its port to be: an HTTP
// listener, a TLS listener routing by SNI, or one TCP server's.
func gatewayPortClass(s *networkingapi.Server) string {
	switch k := ServerKind(s); {
	case k == ServerHTTP:
		return "HTTP"
	case k.SNIRouted():
		return "TLS"
	case k == ServerTCP:
		return "TCP"
	}
	return strings.ToUpper(s.GetPort().GetProtocol())
}

// gatewayServedRank orders what mizzen serves on a port of a gateway proxy:
// plain-HTTP servers, else the servers routed by SNI (HTTPS, TLS), else a
// TCP server.
func gatewayServedRank(s *networkingapi.Server) int {
	if !GatewayServerServable(s) {
		return 0
	}
	switch k := ServerKind(s); {
	case k == ServerHTTP:
		return 3
	case k.SNIRouted():
		return 2
	case k == ServerTCP:
		return 1
	}
	return 0
}

// checkGatewayPortProtocols warns about servers that claim a port another
// server of the same gateway workload claims with a protocol the port's one
// listener cannot also carry (HTTP and TCP, HTTP and HTTPS, ...): one of them
// is not served. mizzen serves the plain-HTTP server, else the terminated
// HTTPS one (gateway TCP and TLS passthrough servers are not served at all);
// istiod keeps the server of the oldest Gateway instead, and the message says
// so when that differs. Two Gateways share a workload when some Pod matches
// both selectors, or, with no Pods in the config, when their selectors are
// equal. Conflicts inside one Gateway between plain HTTP and HTTPS are
// ValidateGateway's (GatewayPortConflict).
func (s *Snapshot) checkGatewayPortProtocols(in *Inputs) []ConfigError {
	byPort := map[string][]gatewayServerRef{}
	for _, gw := range s.Gateways { // oldest first, as istiod merges them
		for i, srv := range gw.Spec.GetServers() {
			if !GatewayServerServable(srv) {
				continue // refused on its own (ValidateGateway)
			}
			k := gatewayListenerKey(srv)
			byPort[k] = append(byPort[k], gatewayServerRef{gw, i, srv})
		}
	}
	shared := func(a, b *networking.Gateway) (string, bool) {
		if a == b {
			return "", true
		}
		if len(in.Pods) == 0 {
			return "", sameSelector(a.Spec.GetSelector(), b.Spec.GetSelector())
		}
		for _, p := range in.Pods {
			if LabelsMatch(a.Spec.GetSelector(), p.Labels) && LabelsMatch(b.Spec.GetSelector(), p.Labels) {
				return "Pod " + p.Namespace + "/" + p.Name, true
			}
		}
		return "", false
	}
	var errs []ConfigError
	keys := make([]string, 0, len(byPort))
	for k := range byPort {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := byPort[keys[i]][0].srv, byPort[keys[j]][0].srv
		if a.GetPort().GetNumber() != b.GetPort().GetNumber() {
			return a.GetPort().GetNumber() < b.GetPort().GetNumber()
		}
		return keys[i] < keys[j]
	})
	for _, key := range keys {
		refs := byPort[key]
		port := refs[0].srv.GetPort().GetNumber()
		errs = append(errs, sameClassClashes(refs, shared)...)
		for _, r := range refs {
			// served: what mizzen serves on this port for r's workload;
			// oldest: what istiod keeps.
			var served, oldest *gatewayServerRef
			var via string
			for k := range refs {
				o := &refs[k]
				w, ok := shared(r.gw, o.gw)
				if !ok {
					continue
				}
				if oldest == nil {
					oldest = o
				}
				if served == nil || gatewayServedRank(o.srv) > gatewayServedRank(served.srv) {
					served, via = o, w
				}
			}
			if gatewayPortClass(served.srv) == gatewayPortClass(r.srv) {
				continue
			}
			if served.gw == r.gw {
				continue // ValidateGateway's GatewayPortConflict
			}
			workload := "the same gateway workload"
			if via != "" {
				workload += " (" + via + ")"
			}
			why := "mizzen serves plain HTTP first"
			if gatewayServedRank(served.srv) == 2 {
				why = "mizzen serves the servers routed by SNI (HTTPS, TLS) before a TCP server"
			}
			istiod := "istiod, which keeps the oldest Gateway's server, agrees"
			switch {
			case oldest.gw == r.gw && oldest.index == r.index:
				istiod = "istiod keeps this one instead (the oldest Gateway's server) and drops that one"
			case oldest.gw != served.gw || oldest.index != served.index:
				istiod = fmt.Sprintf("istiod keeps the oldest Gateway's server instead, %s", oldest)
			}
			errs = append(errs, ConfigError{Kind: "Gateway", Namespace: r.gw.Namespace, Name: r.gw.Name,
				Field: fmt.Sprintf("spec.servers[%d].port", r.index), Code: "GatewayPortProtocolConflict", Warning: true,
				Message: fmt.Sprintf("port %d is also claimed by %s for %s, and a port carries one protocol: this %s server is not served, that one is (%s); %s",
					port, served, workload, strings.ToUpper(r.srv.GetPort().GetProtocol()), why, istiod)})
		}
	}
	return errs
}

func sameSelector(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// sameClassClashes reports servers of different Gateways of one workload that
// share a listener and a class but cannot both be served: a second TCP server
// (a TCP port carries one), or a TLS server repeating a host of an earlier
// one (Envoy refuses two filter chains with the same SNI match; istiod too
// skips the later server). Earlier means older Gateway, the order translation
// and istiod both follow. Clashes inside one Gateway are ValidateGateway's.
func sameClassClashes(refs []gatewayServerRef, shared func(a, b *networking.Gateway) (string, bool)) []ConfigError {
	var errs []ConfigError
	for j, r := range refs {
		class := gatewayPortClass(r.srv)
		if class != "TCP" && class != "TLS" {
			continue
		}
		for _, o := range refs[:j] {
			if o.gw == r.gw || gatewayPortClass(o.srv) != class {
				continue
			}
			via, ok := shared(r.gw, o.gw)
			if !ok {
				continue
			}
			workload := "the same gateway workload"
			if via != "" {
				workload += " (" + via + ")"
			}
			var msg string
			if class == "TCP" {
				msg = fmt.Sprintf("port %d already carries the TCP server of %s for %s, and a TCP port carries one: this server is not served (istiod keeps the older one too)",
					r.srv.GetPort().GetNumber(), o, workload)
			} else {
				hosts := map[string]int{}
				claimHosts(hosts, "", o.srv.GetHosts(), 0)
				if _, dup := firstDuplicateHost(hosts, "", r.srv.GetHosts()); dup != "" {
					msg = fmt.Sprintf("host %s on port %d is also a host of %s for %s; Envoy cannot tell their connections apart, so this server is not served (istiod skips it too)",
						dup, r.srv.GetPort().GetNumber(), o, workload)
				}
			}
			if msg != "" {
				errs = append(errs, ConfigError{Kind: "Gateway", Namespace: r.gw.Namespace, Name: r.gw.Name,
					Field: fmt.Sprintf("spec.servers[%d]", r.index), Code: "GatewayServerConflict", Warning: true, Message: msg})
				break
			}
		}
	}
	return errs
}
