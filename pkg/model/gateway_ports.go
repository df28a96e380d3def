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
// listener, a TLS listener routing by SNI, or something else (TCP, ...).
func gatewayPortClass(s *networkingapi.Server) string {
	p := ParseProtocol(s.GetPort().GetProtocol())
	switch {
	case p.IsHTTP():
		return "HTTP"
	case p.IsTLS():
		return "TLS"
	}
	return strings.ToUpper(s.GetPort().GetProtocol())
}

// gatewayServedRank orders what mizzen serves on a port of a gateway proxy:
// plain-HTTP servers, else terminated HTTPS servers; nothing else is served
// by a gateway yet (TCP, TLS passthrough).
func gatewayServedRank(s *networkingapi.Server) int {
	switch {
	case ParseProtocol(s.GetPort().GetProtocol()).IsHTTP():
		return 2
	case IsTLSTerminating(s):
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
	byPort := map[uint32][]gatewayServerRef{}
	for _, gw := range s.Gateways { // oldest first, as istiod merges them
		for i, srv := range gw.Spec.GetServers() {
			byPort[srv.GetPort().GetNumber()] = append(byPort[srv.GetPort().GetNumber()], gatewayServerRef{gw, i, srv})
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
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	for _, port := range ports {
		refs := byPort[port]
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
			if served.gw == r.gw && gatewayServedRank(served.srv) == 2 && IsTLSTerminating(r.srv) {
				continue // ValidateGateway's GatewayPortConflict
			}
			workload := "the same gateway workload"
			if via != "" {
				workload += " (" + via + ")"
			}
			why := "mizzen serves plain HTTP first"
			if gatewayServedRank(served.srv) == 1 {
				why = "mizzen serves a terminated HTTPS server before TCP or TLS passthrough"
			}
			if gatewayServedRank(r.srv) == 0 {
				why += ", and does not serve gateway " + strings.ToUpper(r.srv.GetPort().GetProtocol()) + " servers yet"
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
