package model

import (
	"fmt"
	"regexp"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// The single-object checks live here so that the model, `mizzen analyze` and the
// validation webhook refuse exactly the same things.

// ValidateVirtualService returns the problems of one VirtualService on its own.
func ValidateVirtualService(vs *networking.VirtualService) []ConfigError {
	v := validator{kind: "VirtualService", ns: vs.Namespace, name: vs.Name}
	if len(vs.Spec.GetHosts()) == 0 {
		v.fail("spec.hosts", "MissingHosts", "at least one host is required")
	}
	for i, h := range vs.Spec.GetHosts() {
		if h == "" {
			v.fail(fmt.Sprintf("spec.hosts[%d]", i), "InvalidHost", "host must not be empty")
		}
	}
	for i, r := range vs.Spec.GetHttp() {
		base := fmt.Sprintf("spec.http[%d]", i)
		for j, m := range r.GetMatch() {
			mb := fmt.Sprintf("%s.match[%d]", base, j)
			v.stringMatch(mb+".uri", m.GetUri())
			v.stringMatch(mb+".method", m.GetMethod())
			v.stringMatch(mb+".authority", m.GetAuthority())
			v.stringMatch(mb+".scheme", m.GetScheme())
			for _, k := range sortedKeys(m.GetHeaders()) {
				v.stringMatch(fmt.Sprintf("%s.headers[%s]", mb, k), m.GetHeaders()[k])
			}
			for _, k := range sortedKeys(m.GetWithoutHeaders()) {
				v.stringMatch(fmt.Sprintf("%s.withoutHeaders[%s]", mb, k), m.GetWithoutHeaders()[k])
			}
			for _, k := range sortedKeys(m.GetQueryParams()) {
				qp := m.GetQueryParams()[k]
				if _, ok := qp.GetMatchType().(*networkingapi.StringMatch_Prefix); ok {
					v.fail(fmt.Sprintf("%s.queryParams[%s].prefix", mb, k), "UnsupportedMatch", "queryParams support exact and regex only")
				}
				v.stringMatch(fmt.Sprintf("%s.queryParams[%s]", mb, k), qp)
			}
		}
		if len(r.GetRoute()) == 0 && r.GetRedirect() == nil && r.GetDirectResponse() == nil && r.GetDelegate() == nil {
			v.fail(base+".route", "MissingDestination", "an HTTP route needs route, redirect, directResponse or delegate")
		}
		if r.GetRedirect() != nil && len(r.GetRoute()) > 0 {
			v.fail(base+".redirect", "RedirectWithRoute", "redirect and route are mutually exclusive")
		}
		v.destinations(base+".route", httpDests(r.GetRoute()))
	}
	for i, r := range vs.Spec.GetTcp() {
		v.destinations(fmt.Sprintf("spec.tcp[%d].route", i), routeDests(r.GetRoute()))
	}
	for i, r := range vs.Spec.GetTls() {
		v.destinations(fmt.Sprintf("spec.tls[%d].route", i), routeDests(r.GetRoute()))
	}
	return v.errs
}

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
	}
	return v.errs
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

// maxRegexLen keeps regexes well inside Envoy's default RE2 program size limit;
// Envoy rejects (NACKs) a route table whose regex exceeds it.
const maxRegexLen = 1024

func (v *validator) stringMatch(field string, m *networkingapi.StringMatch) {
	if m == nil {
		return
	}
	re, ok := m.GetMatchType().(*networkingapi.StringMatch_Regex)
	if !ok {
		return
	}
	if re.Regex == "" {
		v.fail(field+".regex", "InvalidRegex", "regex must not be empty")
		return
	}
	if len(re.Regex) > maxRegexLen {
		v.fail(field+".regex", "InvalidRegex", fmt.Sprintf("regex is longer than %d characters", maxRegexLen))
		return
	}
	// Go's regexp accepts RE2 syntax, the dialect Envoy compiles.
	if _, err := regexp.Compile(re.Regex); err != nil {
		v.fail(field+".regex", "InvalidRegex", fmt.Sprintf("%q is not a valid RE2 regex: %v", re.Regex, err))
	}
}

type dest struct {
	host   string
	subset string
	weight int32
}

func httpDests(in []*networkingapi.HTTPRouteDestination) []dest {
	out := make([]dest, 0, len(in))
	for _, d := range in {
		out = append(out, dest{d.GetDestination().GetHost(), d.GetDestination().GetSubset(), d.GetWeight()})
	}
	return out
}

func routeDests(in []*networkingapi.RouteDestination) []dest {
	out := make([]dest, 0, len(in))
	for _, d := range in {
		out = append(out, dest{d.GetDestination().GetHost(), d.GetDestination().GetSubset(), d.GetWeight()})
	}
	return out
}

// destinations enforces Istio's weight rule: one destination may omit its weight;
// several must carry weights that sum to 100.
func (v *validator) destinations(field string, ds []dest) {
	var sum int32
	for i, d := range ds {
		if d.host == "" {
			v.fail(fmt.Sprintf("%s[%d].destination.host", field, i), "MissingHost", "destination host is required")
		}
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
