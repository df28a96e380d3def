package translate

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// VirtualService http[].headers and http[].route[].headers -> request/response
// headers to add and remove, on the route or on one weighted cluster.

// headerOps is one Istio Headers block in Envoy terms.
type headerOps struct {
	requestAdd     []*corev3.HeaderValueOption
	requestRemove  []string
	responseAdd    []*corev3.HeaderValueOption
	responseRemove []string
	// authority is a request Host/:authority set or added: Envoy may not touch
	// those headers, so Istio turns it into a host rewrite instead.
	authority string
}

func translateHeaders(h *networkingapi.Headers) headerOps {
	var out headerOps
	if h == nil {
		return out
	}
	req, resp := h.GetRequest(), h.GetResponse()
	set, setAuthority := headerValues(req.GetSet(), false)
	add, addAuthority := headerValues(req.GetAdd(), true)
	out.requestAdd = append(set, add...)
	out.authority = addAuthority
	if setAuthority != "" {
		out.authority = setAuthority
	}
	set, _ = headerValues(resp.GetSet(), false)
	add, _ = headerValues(resp.GetAdd(), true)
	out.responseAdd = append(set, add...)
	out.requestRemove = withoutInternalHeaders(req.GetRemove())
	out.responseRemove = withoutInternalHeaders(resp.GetRemove())
	return out
}

// applyHeaderOperations puts a route-level Headers block on the route and
// returns the authority it asks for.
func applyHeaderOperations(h *networkingapi.Headers, r *routev3.Route) string {
	ops := translateHeaders(h)
	r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, ops.requestAdd...)
	r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, ops.requestRemove...)
	r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, ops.responseAdd...)
	r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, ops.responseRemove...)
	return ops.authority
}

// headerValues: `set` overwrites, `add` appends, matching Istio. Pseudo-headers
// and Host are left out (Envoy refuses to modify them); the authority they
// carried is returned instead.
func headerValues(m map[string]string, add bool) ([]*corev3.HeaderValueOption, string) {
	var out []*corev3.HeaderValueOption
	authority := ""
	for _, k := range sortedKeys(m) {
		if isAuthorityHeader(k) {
			authority = m[k]
		}
		if isInternalHeader(k) {
			continue
		}
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if add {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: m[k]}, AppendAction: action})
	}
	return out, authority
}

func isInternalHeader(name string) bool {
	return strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")
}

func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

func withoutInternalHeaders(names []string) []string {
	var out []string
	for _, n := range names {
		if !isInternalHeader(n) {
			out = append(out, n)
		}
	}
	return out
}

func dataSource(b *networkingapi.HTTPBody) *corev3.DataSource {
	switch v := b.GetSpecifier().(type) {
	case *networkingapi.HTTPBody_String_:
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: v.String_}}
	case *networkingapi.HTTPBody_Bytes:
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: v.Bytes}}
	}
	return nil
}
