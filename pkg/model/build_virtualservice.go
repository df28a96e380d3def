package model

import (
	"fmt"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// buildVirtualServices validates VirtualServices oldest first, keeps the valid
// ones, merges delegates into their roots and reports cross-object problems.
func (s *Snapshot) buildVirtualServices(in *Inputs) {
	var withHosts []*networking.VirtualService
	delegates := map[string]*networking.VirtualService{}
	for _, vs := range byCreation(in.VirtualServices) {
		errs := ValidateVirtualService(vs)
		s.Errors = append(s.Errors, errs...)
		if hasErrors(errs) {
			continue
		}
		s.Errors = append(s.Errors, s.crossCheckVirtualService(vs)...)
		if len(vs.Spec.GetHosts()) == 0 {
			delegates[vs.Namespace+"/"+vs.Name] = vs
			continue
		}
		withHosts = append(withHosts, vs)
	}
	used := map[string]bool{}
	for _, vs := range withHosts {
		if hasDelegate(vs) {
			vs = s.mergeDelegates(vs, delegates, used)
		}
		s.VirtualServices = append(s.VirtualServices, vs)
	}
	for _, key := range sortedKeys(delegates) {
		if !used[key] {
			d := delegates[key]
			s.addError(ConfigError{Kind: "VirtualService", Namespace: d.Namespace, Name: d.Name, Field: "spec.hosts",
				Code: "DelegateNotReferenced", Warning: true,
				Message: "this VirtualService has no hosts, so it is a delegate, but no root VirtualService delegates to it: it has no effect"})
		}
	}
	s.Errors = append(s.Errors, s.crossCheckVirtualServiceHosts()...)
}

// crossCheckVirtualService reports references the snapshot cannot satisfy. They
// are warnings: Istio applies such a VirtualService and the route answers 503.
func (s *Snapshot) crossCheckVirtualService(vs *networking.VirtualService) []ConfigError {
	var out []ConfigError
	for i, r := range vs.Spec.GetHttp() {
		for j, d := range r.GetRoute() {
			out = append(out, s.checkDestination(vs, fmt.Sprintf("spec.http[%d].route[%d].destination", i, j), d.GetDestination())...)
		}
		if m := r.GetMirror(); m != nil {
			out = append(out, s.checkDestination(vs, fmt.Sprintf("spec.http[%d].mirror", i), m)...)
		}
		for j, m := range r.GetMirrors() {
			out = append(out, s.checkDestination(vs, fmt.Sprintf("spec.http[%d].mirrors[%d].destination", i, j), m.GetDestination())...)
		}
	}
	for i, r := range vs.Spec.GetTcp() {
		for j, d := range r.GetRoute() {
			out = append(out, s.checkDestination(vs, fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j), d.GetDestination())...)
		}
	}
	for i, r := range vs.Spec.GetTls() {
		for j, d := range r.GetRoute() {
			out = append(out, s.checkDestination(vs, fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j), d.GetDestination())...)
		}
	}
	return out
}

func (s *Snapshot) checkDestination(vs *networking.VirtualService, field string, d *networkingapi.Destination) []ConfigError {
	host := ResolveHost(d.GetHost(), vs.Namespace)
	svc := s.services[host]
	if svc == nil {
		return []ConfigError{{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name, Field: field + ".host",
			Code: "ReferencedResourceNotFound", Warning: true, Message: fmt.Sprintf("host %s is not a known service", host)}}
	}
	var out []ConfigError
	if p := d.GetPort().GetNumber(); p != 0 && svc.PortByNumber(p) == nil {
		out = append(out, ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name, Field: field + ".port.number",
			Code: "DestinationPortNotFound", Warning: true, Message: fmt.Sprintf("port %d is not a port of service %s", p, host)})
	}
	if ss := d.GetSubset(); ss != "" {
		if !s.subsetDefined(host, ss) {
			out = append(out, ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name, Field: field + ".subset",
				Code: "ReferencedSubsetNotFound", Warning: true,
				Message: fmt.Sprintf("subset %q of host %s is not defined by any DestinationRule; requests on this route will get 503", ss, host)})
		}
	}
	return out
}

// crossCheckVirtualServiceHosts reports mesh-bound VirtualServices that claim
// the same host. Sidecars take a host's HTTP routes from one VirtualService
// only, the oldest (Istio builds one virtual host per host and keeps the
// first); gateways merge them instead, so only the mesh is checked.
func (s *Snapshot) crossCheckVirtualServiceHosts() []ConfigError {
	var out []ConfigError
	first := map[string]*networking.VirtualService{}
	for _, vs := range s.VirtualServices {
		if !boundToMesh(vs) {
			continue
		}
		for i, h := range vs.Spec.GetHosts() {
			host := ResolveHost(h, vs.Namespace)
			prev, seen := first[host]
			if !seen {
				first[host] = vs
				continue
			}
			if prev == vs || len(vs.Spec.GetHttp()) == 0 {
				continue
			}
			out = append(out, ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name, Field: fmt.Sprintf("spec.hosts[%d]", i),
				Code: "ConflictingVirtualServiceHosts", Warning: true,
				Message: fmt.Sprintf("host %s is also defined by VirtualService %s/%s, which is older: sidecars route HTTP for this host by that "+
					"one only and ignore the http routes here (tcp and tls routes of both apply, older first); merge them into one VirtualService",
					host, prev.Namespace, prev.Name)})
		}
	}
	return out
}

func boundToMesh(vs *networking.VirtualService) bool {
	if len(vs.Spec.GetGateways()) == 0 {
		return true
	}
	for _, g := range vs.Spec.GetGateways() {
		if g == "mesh" {
			return true
		}
	}
	return false
}

func hasDelegate(vs *networking.VirtualService) bool {
	for _, r := range vs.Spec.GetHttp() {
		if r.GetDelegate() != nil {
			return true
		}
	}
	return false
}

// mergeDelegates returns a copy of root whose delegating http routes are
// replaced by the delegate's routes, merged as Istio merges them: each delegate
// route's matches must fall within one of the root route's matches (they are
// intersected), and what the delegate route leaves unset comes from the root
// route. Delegate routes whose matches fall outside are dropped with a warning,
// as is a root route whose delegate does not exist.
func (s *Snapshot) mergeDelegates(root *networking.VirtualService, delegates map[string]*networking.VirtualService, used map[string]bool) *networking.VirtualService {
	out := root.DeepCopy()
	var merged []*networkingapi.HTTPRoute
	for i, hr := range out.Spec.GetHttp() {
		ref := hr.GetDelegate()
		if ref == nil {
			merged = append(merged, hr)
			continue
		}
		ns := ref.GetNamespace()
		if ns == "" {
			ns = root.Namespace
		}
		key := ns + "/" + ref.GetName()
		d := delegates[key]
		if d == nil {
			s.addError(ConfigError{Kind: "VirtualService", Namespace: root.Namespace, Name: root.Name, Field: fmt.Sprintf("spec.http[%d].delegate", i),
				Code: "ReferencedResourceNotFound", Warning: true,
				Message: fmt.Sprintf("delegate VirtualService %s does not exist (or is invalid, or has hosts); this route is left out", key)})
			continue
		}
		used[key] = true
		hr.Delegate = nil
		for j, child := range d.Spec.DeepCopy().GetHttp() {
			resolveDelegateRoute(child, d.Namespace)
			m, ok := mergeHTTPRoute(hr, child)
			if !ok {
				s.addError(ConfigError{Kind: "VirtualService", Namespace: d.Namespace, Name: d.Name, Field: fmt.Sprintf("spec.http[%d].match", j),
					Code: "DelegateMatchConflict", Warning: true,
					Message: fmt.Sprintf("the matches are not within those of spec.http[%d] of root VirtualService %s/%s, which delegates here; this route is left out",
						i, root.Namespace, root.Name)})
				continue
			}
			merged = append(merged, m)
		}
	}
	out.Spec.Http = merged
	return out
}

// resolveDelegateRoute makes the delegate's short names absolute before its
// routes move into a root of another namespace.
func resolveDelegateRoute(r *networkingapi.HTTPRoute, ns string) {
	for _, d := range r.GetRoute() {
		if d.GetDestination() != nil {
			d.Destination.Host = ResolveHost(d.Destination.Host, ns)
		}
	}
	if r.GetMirror() != nil {
		r.Mirror.Host = ResolveHost(r.Mirror.Host, ns)
	}
	for _, m := range r.GetMirrors() {
		if m.GetDestination() != nil {
			m.Destination.Host = ResolveHost(m.Destination.Host, ns)
		}
	}
	for _, m := range r.GetMatch() {
		for i, g := range m.GetGateways() {
			if g != "mesh" && !strings.Contains(g, "/") {
				m.Gateways[i] = ns + "/" + g
			}
		}
	}
}

func mergeHTTPRoute(root, child *networkingapi.HTTPRoute) (*networkingapi.HTTPRoute, bool) {
	matches, ok := mergeHTTPMatches(root.GetMatch(), child.GetMatch())
	if !ok {
		return nil, false
	}
	child.Match = matches
	switch {
	case child.Name == "":
		child.Name = root.GetName()
	case root.GetName() != "":
		child.Name = root.GetName() + "-" + child.Name
	}
	if child.Rewrite == nil {
		child.Rewrite = root.Rewrite
	}
	if child.DirectResponse == nil {
		child.DirectResponse = root.DirectResponse
	}
	if child.Timeout == nil {
		child.Timeout = root.Timeout
	}
	if child.Retries == nil {
		child.Retries = root.Retries
	}
	if child.Fault == nil {
		child.Fault = root.Fault
	}
	if child.Mirror == nil {
		child.Mirror = root.Mirror
	}
	if child.MirrorPercent == nil { //nolint:staticcheck // merged like Istio
		child.MirrorPercent = root.MirrorPercent //nolint:staticcheck // merged like Istio
	}
	if child.MirrorPercentage == nil {
		child.MirrorPercentage = root.MirrorPercentage
	}
	if child.CorsPolicy == nil {
		child.CorsPolicy = root.CorsPolicy
	}
	if child.Mirrors == nil {
		child.Mirrors = root.Mirrors
	}
	if child.Headers == nil {
		child.Headers = root.Headers
	}
	return child, true
}

// mergeHTTPMatches intersects: every child match must fit in at least one root
// match, and yields one merged match per root match it fits.
func mergeHTTPMatches(root, child []*networkingapi.HTTPMatchRequest) ([]*networkingapi.HTTPMatchRequest, bool) {
	if len(root) == 0 {
		return child, true
	}
	if len(child) == 0 {
		return root, true
	}
	var out []*networkingapi.HTTPMatchRequest
	for _, c := range child {
		found := false
		for _, r := range root {
			if matchConflict(r, c) {
				continue
			}
			out = append(out, mergeHTTPMatch(r, c))
			found = true
		}
		if !found {
			return nil, false
		}
	}
	return out, len(out) > 0
}

func mergeHTTPMatch(root, child *networkingapi.HTTPMatchRequest) *networkingapi.HTTPMatchRequest {
	out := &networkingapi.HTTPMatchRequest{
		Name: child.GetName(), Uri: child.GetUri(), Scheme: child.GetScheme(), Method: child.GetMethod(), Authority: child.GetAuthority(),
		IgnoreUriCase: child.GetIgnoreUriCase(), Port: child.GetPort(), SourceNamespace: child.GetSourceNamespace(),
		Gateways: child.GetGateways(), StatPrefix: child.GetStatPrefix(),
		Headers:        mergeMaps(root.GetHeaders(), child.GetHeaders()),
		WithoutHeaders: mergeMaps(root.GetWithoutHeaders(), child.GetWithoutHeaders()),
		QueryParams:    mergeMaps(root.GetQueryParams(), child.GetQueryParams()),
		SourceLabels:   mergeMaps(root.GetSourceLabels(), child.GetSourceLabels()),
	}
	switch {
	case out.Name == "":
		out.Name = root.GetName()
	case root.GetName() != "":
		out.Name = root.GetName() + "-" + out.Name
	}
	if out.Uri == nil {
		out.Uri = root.GetUri()
	}
	if out.Scheme == nil {
		out.Scheme = root.GetScheme()
	}
	if out.Method == nil {
		out.Method = root.GetMethod()
	}
	if out.Authority == nil {
		out.Authority = root.GetAuthority()
	}
	if out.Port == 0 {
		out.Port = root.GetPort()
	}
	if out.SourceNamespace == "" {
		out.SourceNamespace = root.GetSourceNamespace()
	}
	if len(out.Gateways) == 0 {
		out.Gateways = root.GetGateways()
	}
	if out.StatPrefix == "" {
		out.StatPrefix = root.GetStatPrefix()
	}
	return out
}

func mergeMaps[V any](root, child map[string]V) map[string]V {
	if len(root) == 0 && len(child) == 0 {
		return nil
	}
	out := make(map[string]V, len(root)+len(child))
	for k, v := range root {
		out[k] = v
	}
	for k, v := range child {
		out[k] = v
	}
	return out
}

// matchConflict reports whether a child match can match requests its root
// match would not (Istio's hasConflict).
func matchConflict(root, child *networkingapi.HTTPMatchRequest) bool {
	roots := []*networkingapi.StringMatch{root.GetUri(), root.GetScheme(), root.GetMethod(), root.GetAuthority()}
	children := []*networkingapi.StringMatch{child.GetUri(), child.GetScheme(), child.GetMethod(), child.GetAuthority()}
	for i := range roots {
		if stringMatchConflict(roots[i], children[i]) {
			return true
		}
	}
	for k, m := range child.GetHeaders() {
		if stringMatchConflict(root.GetHeaders()[k], m) {
			return true
		}
	}
	for k, m := range child.GetWithoutHeaders() {
		if stringMatchConflict(root.GetWithoutHeaders()[k], m) {
			return true
		}
	}
	for k, m := range child.GetQueryParams() {
		if stringMatchConflict(root.GetQueryParams()[k], m) {
			return true
		}
	}
	if root.GetIgnoreUriCase() != child.GetIgnoreUriCase() {
		return true
	}
	if root.GetPort() > 0 && child.GetPort() > 0 && root.GetPort() != child.GetPort() {
		return true
	}
	if root.GetSourceNamespace() != "" && child.GetSourceNamespace() != root.GetSourceNamespace() {
		return true
	}
	for k, v := range child.GetSourceLabels() {
		if rv, ok := root.GetSourceLabels()[k]; ok && rv != v {
			return true
		}
	}
	if len(root.GetGateways()) > 0 && len(child.GetGateways()) > 0 {
		rg := toSet(root.GetGateways()...)
		for _, g := range child.GetGateways() {
			if !rg[g] {
				return true
			}
		}
	}
	return false
}

func stringMatchConflict(root, child *networkingapi.StringMatch) bool {
	if root == nil || child == nil {
		return false
	}
	if root.GetRegex() != "" || child.GetRegex() != "" {
		return true // regexes cannot be intersected (validation refuses them here)
	}
	if exact := root.GetExact(); exact != "" {
		return child.GetPrefix() != "" || child.GetExact() != exact
	}
	if prefix := root.GetPrefix(); prefix != "" {
		switch {
		case child.GetPrefix() != "":
			return !strings.HasPrefix(child.GetPrefix(), prefix)
		case child.GetExact() != "":
			return !strings.HasPrefix(child.GetExact(), prefix)
		}
	}
	return true
}
