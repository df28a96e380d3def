package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// applyHeaderOperations maps VirtualService http[].headers onto the route.
func applyHeaderOperations(h *networkingapi.Headers, r *routev3.Route) {
	if h == nil {
		return
	}
	r.RequestHeadersToAdd = append(headerValues(h.GetRequest().GetSet(), false), headerValues(h.GetRequest().GetAdd(), true)...)
	r.RequestHeadersToRemove = h.GetRequest().GetRemove()
	r.ResponseHeadersToAdd = append(headerValues(h.GetResponse().GetSet(), false), headerValues(h.GetResponse().GetAdd(), true)...)
	r.ResponseHeadersToRemove = h.GetResponse().GetRemove()
}

// headerValues: `set` overwrites, `add` appends, matching Istio.
func headerValues(m map[string]string, add bool) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(m) {
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if add {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: m[k]}, AppendAction: action})
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

func previousHostsPredicate() *previoushosts.PreviousHostsPredicate {
	return &previoushosts.PreviousHostsPredicate{}
}
