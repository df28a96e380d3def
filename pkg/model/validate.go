package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// The single-object checks live here so that the model, `mizzen analyze` and the
// validation webhook refuse exactly the same things.

// ValidateDestinationRule returns the problems of one DestinationRule on its own.
func ValidateDestinationRule(dr *networking.DestinationRule) []ConfigError {
	v := validator{kind: "DestinationRule", ns: dr.Namespace, name: dr.Name}
	if dr.Spec.GetHost() == "" {
		v.fail("spec.host", "MissingHost", "host is required")
	}
	v.trafficPolicy("spec.trafficPolicy", dr.Spec.GetTrafficPolicy())
	seen := map[string]bool{}
	for i, ss := range dr.Spec.GetSubsets() {
		f := fmt.Sprintf("spec.subsets[%d]", i)
		if ss == nil {
			v.fail(f, "MissingSubset", "subset must not be null")
			continue
		}
		v.subsetName(f+".name", ss.GetName())
		if seen[ss.GetName()] {
			v.fail(f+".name", "DuplicateSubset", fmt.Sprintf("subset %q is defined twice", ss.GetName()))
		}
		seen[ss.GetName()] = true
		v.labels(f+".labels", ss.GetLabels())
		v.trafficPolicy(f+".trafficPolicy", ss.GetTrafficPolicy())
	}
	v.exportTo("spec.exportTo", dr.Namespace, dr.Spec.GetExportTo())
	return v.errs
}

// ValidateGateway returns the problems of one Gateway on its own.
func ValidateGateway(gw *networking.Gateway) []ConfigError {
	v := validator{kind: "Gateway", ns: gw.Namespace, name: gw.Name}
	if len(gw.Spec.GetServers()) == 0 {
		v.fail("spec.servers", "MissingServers", "at least one server is required")
	}
	for i, s := range gw.Spec.GetServers() {
		f := fmt.Sprintf("spec.servers[%d]", i)
		if s.GetPort() == nil || s.GetPort().GetNumber() == 0 || s.GetPort().GetNumber() > 65535 {
			v.fail(f+".port.number", "InvalidPort", "port number must be 1-65535")
		}
		if len(s.GetHosts()) == 0 {
			v.fail(f+".hosts", "MissingHosts", "at least one host is required")
		}
		v.gatewayServer(f, s)
	}
	v.gatewayPortConflicts(gw.Spec.GetServers())
	return v.errs
}

// gatewayPortConflicts warns about the servers of one Gateway that the
// gateway's listeners cannot carry, which translation skips. A listener is
// one (bind, port): plain-HTTP servers take the whole port; else servers
// routed by SNI share it, each host on one server only (Envoy refuses two
// filter chains with the same match, istiod skips the later server); else
// the port is one TCP server's.
func (v *validator) gatewayPortConflicts(servers []*networkingapi.Server) {
	plain := map[string]int{} // bind|port -> index of its first plain-HTTP server
	sni := map[string]bool{}  // bind|port -> some server is SNI-routed
	for i, s := range servers {
		k := gatewayListenerKey(s)
		switch ServerKind(s) {
		case ServerHTTP:
			if _, ok := plain[k]; !ok {
				plain[k] = i
			}
		case ServerHTTPS, ServerTLSTerminated, ServerPassthrough, ServerAutoPassthrough:
			if GatewayServerServable(s) {
				sni[k] = true
			}
		}
	}
	hosts := map[string]int{} // bind|port|host -> server index
	tcp := map[string]int{}
	for i, s := range servers {
		kind := ServerKind(s)
		if kind == ServerHTTP || !GatewayServerServable(s) {
			continue
		}
		port := s.GetPort().GetNumber()
		k := gatewayListenerKey(s)
		f := fmt.Sprintf("spec.servers[%d]", i)
		if j, ok := plain[k]; ok {
			v.warn(f+".port.number", "GatewayPortConflict", fmt.Sprintf(
				"port %d also has a plain-HTTP server (spec.servers[%d]); a port has one listener, so this %s server is ignored: use another port", port, j, kind))
			continue
		}
		if kind == ServerTCP {
			if sni[k] {
				v.warn(f+".port.number", "GatewayPortConflict", fmt.Sprintf(
					"port %d also has TLS servers, routed by SNI; a TCP server would take every connection, so this one is ignored: use another port", port))
				continue
			}
			if j, ok := tcp[k]; ok {
				v.warn(f+".port.number", "GatewayPortConflict", fmt.Sprintf(
					"port %d already has a TCP server (spec.servers[%d]); a TCP port carries one, so this one is ignored", port, j))
				continue
			}
			tcp[k] = i
			continue
		}
		if j, dup := firstDuplicateHost(hosts, k, s.GetHosts()); dup != "" {
			v.warn(f+".hosts", "GatewayPortConflict", fmt.Sprintf(
				"host %s on port %d is also a host of spec.servers[%d]; Envoy cannot tell their connections apart, so this server is ignored", dup, port, j))
			continue
		}
		claimHosts(hosts, k, s.GetHosts(), i)
	}
}

// gatewayListenerKey is the listener a server lands on: its bind address and port.
func gatewayListenerKey(s *networkingapi.Server) string {
	return fmt.Sprintf("%s|%d", s.GetBind(), s.GetPort().GetNumber())
}

// firstDuplicateHost returns the first of hosts (without namespace) already
// claimed on listener k, and by which server.
func firstDuplicateHost(claimed map[string]int, k string, hosts []string) (int, string) {
	for _, h := range hosts {
		h = stripHostNamespace(h)
		if j, ok := claimed[k+"|"+h]; ok {
			return j, h
		}
	}
	return 0, ""
}

func claimHosts(claimed map[string]int, k string, hosts []string, i int) {
	for _, h := range hosts {
		claimed[k+"|"+stripHostNamespace(h)] = i
	}
}

func stripHostNamespace(h string) string {
	if i := strings.Index(h, "/"); i >= 0 {
		return h[i+1:]
	}
	return h
}

// SNINames is an HTTPS server's SNI match (filter_chain_match.server_names): hosts
// without their namespace part; a "*" host matches every name (none listed).
func SNINames(hosts []string) []string {
	set := map[string]bool{}
	for _, h := range hosts {
		if i := strings.Index(h, "/"); i >= 0 {
			h = h[i+1:]
		}
		if h == "*" {
			return nil
		}
		set[h] = true
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

type validator struct {
	kind, ns, name string
	errs           []ConfigError
}

func (v *validator) fail(field, code, msg string) {
	v.errs = append(v.errs, ConfigError{Kind: v.kind, Namespace: v.ns, Name: v.name, Field: field, Code: code, Message: msg})
}

// warn reports a problem that does not stop the object from being applied.
func (v *validator) warn(field, code, msg string) {
	v.errs = append(v.errs, ConfigError{Kind: v.kind, Namespace: v.ns, Name: v.name, Field: field, Code: code, Message: msg, Warning: true})
}

// destination checks one Destination as Istio does: a host (not "*"), a subset
// that is a DNS label, a port in range.
func (v *validator) destination(field string, d *networkingapi.Destination) {
	switch {
	case d.GetHost() == "":
		v.fail(field+".host", "MissingHost", "destination host is required")
	case d.GetHost() == "*":
		v.fail(field+".host", "InvalidHost", `destination host must not be "*"`)
	}
	if d.GetSubset() != "" && !isDNSLabel(d.GetSubset()) {
		v.fail(field+".subset", "InvalidSubsetName", fmt.Sprintf("subset %q is not a valid DNS label", d.GetSubset()))
	}
	if d.GetPort() != nil && (d.GetPort().GetNumber() == 0 || d.GetPort().GetNumber() > 65535) {
		v.fail(field+".port.number", "InvalidPort", "port number must be 1-65535")
	}
}

// matchKind says what Envoy turns a StringMatch into: a path matcher, a
// header matcher (headers, withoutHeaders, method, authority, scheme) or a
// query parameter or CORS origin matcher.
type matchKind int

const (
	matchPath matchKind = iota
	matchHeader
	matchOther
)

// stringMatch checks a StringMatch against what Envoy's StringMatcher
// accepts: a regex must compile within the program size limit; a header
// matcher's values must fit a header (an empty prefix is a presence match,
// translate's headerMatcher).
func (v *validator) stringMatch(field string, m *networkingapi.StringMatch, kind matchKind) {
	if m == nil {
		return
	}
	switch t := m.GetMatchType().(type) {
	case *networkingapi.StringMatch_Regex:
		v.regex(field+".regex", t.Regex)
	case *networkingapi.StringMatch_Prefix:
		if msg := headerValueLengthProblem(t.Prefix); kind == matchHeader && msg != "" {
			v.fail(field+".prefix", "InvalidHeaderValue", msg)
		}
	case *networkingapi.StringMatch_Exact:
		if msg := headerValueLengthProblem(t.Exact); kind == matchHeader && msg != "" {
			v.fail(field+".exact", "InvalidHeaderValue", msg)
		}
	}
}

// regex checks a regex Envoy will compile: RE2 syntax as Envoy's RE2 reads
// it, and an RE2 program no larger than Envoy accepts (envoy_regex.go; the
// program size, not the length, is what Envoy limits).
func (v *validator) regex(field, re string) {
	if re == "" {
		v.fail(field, "InvalidRegex", "regex must not be empty")
		return
	}
	if msg := RegexProblem(re); msg != "" {
		code := "InvalidRegex"
		if _, err := RegexProgramSize(re); err == nil || errors.Is(err, errRegexTooLarge) {
			code = "RegexTooLarge"
		}
		v.fail(field, code, msg)
	}
}

type dest struct {
	d      *networkingapi.Destination
	weight int32
}

func httpDests(in []*networkingapi.HTTPRouteDestination) []dest {
	out := make([]dest, 0, len(in))
	for _, d := range in {
		out = append(out, dest{d.GetDestination(), d.GetWeight()})
	}
	return out
}

func routeDests(in []*networkingapi.RouteDestination) []dest {
	out := make([]dest, 0, len(in))
	for _, d := range in {
		out = append(out, dest{d.GetDestination(), d.GetWeight()})
	}
	return out
}

// destinations enforces Istio's weight rule: one destination may omit its weight;
// several must carry weights that sum to 100.
func (v *validator) destinations(field string, ds []dest) {
	var sum int32
	for i, d := range ds {
		v.destination(fmt.Sprintf("%s[%d].destination", field, i), d.d)
		if d.weight < 0 {
			v.fail(fmt.Sprintf("%s[%d].weight", field, i), "InvalidWeight", "weight must not be negative")
		}
		sum += d.weight
	}
	if len(ds) > 1 && sum != 100 {
		v.fail(field+"[*].weight", "WeightsNotSum100", fmt.Sprintf("weights of %d destinations sum to %d, not 100", len(ds), sum))
	}
	if len(ds) == 1 && ds[0].weight != 0 && ds[0].weight != 100 {
		v.fail(field+"[0].weight", "WeightsNotSum100", fmt.Sprintf("a single destination's weight must be 100 or unset, got %d", ds[0].weight))
	}
}
