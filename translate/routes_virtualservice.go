package translate

import (
	"fmt"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// routeScope says where a route table is being built: which port the listener
// serves, which gateway names (or "mesh") select VirtualServices, and who the
// caller is for sourceLabels/sourceNamespace matches.
type routeScope struct {
	port        uint32
	gateways    map[string]bool // "mesh" for sidecars, "<ns>/<name>" for gateways
	sourceNS    string
	sourceLabel map[string]string
}

// virtualServiceRoutes converts the http section of one VirtualService into Envoy
// routes, in order: Istio's first-match-wins semantics map onto Envoy's ordered
// route list, one Envoy route per match block.
func virtualServiceRoutes(snap *model.Snapshot, vs *networking.VirtualService, scope routeScope) []*routev3.Route {
	var out []*routev3.Route
	for i, hr := range vs.Spec.GetHttp() {
		matches := hr.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingapi.HTTPMatchRequest{nil}
		}
		for _, m := range matches {
			if !matchApplies(m, vs, scope) {
				continue
			}
			r := &routev3.Route{
				Name:     routeName(vs, hr, i),
				Match:    routeMatch(m),
				Metadata: istioConfigMetadata("virtual-service", vs.Namespace, vs.Name),
			}
			applyRouteAction(snap, vs, hr, scope, r)
			applyHeaderOperations(hr.GetHeaders(), r)
			out = append(out, r)
		}
	}
	return out
}

func routeName(vs *networking.VirtualService, hr *networkingapi.HTTPRoute, i int) string {
	if hr.GetName() != "" {
		return hr.GetName()
	}
	return fmt.Sprintf("%s.%s.http[%d]", vs.Namespace, vs.Name, i)
}

// matchApplies filters match blocks by the parts Envoy cannot see per request:
// port, gateways and the calling workload (sourceLabels, sourceNamespace).
func matchApplies(m *networkingapi.HTTPMatchRequest, vs *networking.VirtualService, scope routeScope) bool {
	if m == nil {
		return true
	}
	if m.GetPort() != 0 && m.GetPort() != scope.port {
		return false
	}
	if len(m.GetGateways()) > 0 && !gatewaysSelect(m.GetGateways(), vs.Namespace, scope.gateways) {
		return false
	}
	if len(m.GetSourceLabels()) > 0 && (scope.sourceLabel == nil || !model.LabelsMatch(m.GetSourceLabels(), scope.sourceLabel)) {
		return false
	}
	if m.GetSourceNamespace() != "" && m.GetSourceNamespace() != scope.sourceNS {
		return false
	}
	return true
}

// gatewaysSelect reports whether a `gateways:` list names one of the scope's
// gateways. Short names resolve in the VirtualService's namespace; an empty list
// means "mesh", as in Istio.
func gatewaysSelect(names []string, vsNamespace string, scope map[string]bool) bool {
	if len(names) == 0 {
		return scope["mesh"]
	}
	for _, g := range names {
		if g == "mesh" {
			if scope["mesh"] {
				return true
			}
			continue
		}
		if !containsSlash(g) {
			g = vsNamespace + "/" + g
		}
		if scope[g] {
			return true
		}
	}
	return false
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func applyRouteAction(snap *model.Snapshot, vs *networking.VirtualService, hr *networkingapi.HTTPRoute, scope routeScope, r *routev3.Route) {
	if rd := hr.GetRedirect(); rd != nil {
		r.Action = &routev3.Route_Redirect{Redirect: redirectAction(rd)}
		return
	}
	if dr := hr.GetDirectResponse(); dr != nil {
		r.Action = &routev3.Route_DirectResponse{DirectResponse: directResponseAction(dr)}
		return
	}
	action := &routev3.RouteAction{Timeout: dur(0)}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	for _, d := range hr.GetRoute() {
		if len(hr.GetRoute()) > 1 && d.GetWeight() == 0 {
			continue // Istio drops zero-weight destinations from a split
		}
		name := destinationCluster(snap, d.GetDestination(), vs.Namespace, scope.port)
		cw := &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: u32(uint32(max(d.GetWeight(), 1)))}
		if h := d.GetHeaders(); h != nil {
			cw.RequestHeadersToAdd = headerValues(h.GetRequest().GetSet(), false)
			cw.RequestHeadersToAdd = append(cw.RequestHeadersToAdd, headerValues(h.GetRequest().GetAdd(), true)...)
			cw.RequestHeadersToRemove = h.GetRequest().GetRemove()
			cw.ResponseHeadersToAdd = headerValues(h.GetResponse().GetSet(), false)
			cw.ResponseHeadersToAdd = append(cw.ResponseHeadersToAdd, headerValues(h.GetResponse().GetAdd(), true)...)
			cw.ResponseHeadersToRemove = h.GetResponse().GetRemove()
		}
		weighted = append(weighted, cw)
	}
	if len(weighted) == 1 && weighted[0].RequestHeadersToAdd == nil && weighted[0].ResponseHeadersToAdd == nil &&
		weighted[0].RequestHeadersToRemove == nil && weighted[0].ResponseHeadersToRemove == nil {
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].Name}
	} else {
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	if t := hr.GetTimeout(); t != nil {
		action.Timeout = dur(t.AsDuration())
	}
	action.RetryPolicy = retryPolicy(hr.GetRetries())
	if rw := hr.GetRewrite(); rw != nil {
		if rw.GetUri() != "" {
			// Envoy replaces the matched prefix; for an exact match that is the whole path.
			action.PrefixRewrite = rw.GetUri()
		}
		if rw.GetAuthority() != "" {
			action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.GetAuthority()}
		}
	}
	r.Action = &routev3.Route_Route{Route: action}
}

// destinationCluster names the cluster for a VirtualService destination. The port
// is the destination's, else the service's only port, else the listener's port.
func destinationCluster(snap *model.Snapshot, d *networkingapi.Destination, vsNamespace string, listenerPort uint32) string {
	host := model.ResolveHost(d.GetHost(), vsNamespace)
	port := d.GetPort().GetNumber()
	if port == 0 {
		port = listenerPort
		if svc := snap.Service(host); svc != nil && len(svc.Ports) == 1 {
			port = svc.Ports[0].Port
		}
	}
	return OutboundClusterName(port, d.GetSubset(), host)
}

// defaultRetryPolicy is what Istio applies when a route does not set retries:
// two retries of failures that happen before the request reached the app.
func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries:                    u32(2),
		RetriableStatusCodes:          []uint32{503},
		RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts", ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(previousHostsPredicate())}}},
		HostSelectionRetryMaxAttempts: 5,
	}
}

func retryPolicy(r *networkingapi.HTTPRetry) *routev3.RetryPolicy {
	if r == nil {
		return defaultRetryPolicy()
	}
	if r.GetAttempts() == 0 {
		return nil
	}
	p := defaultRetryPolicy()
	p.NumRetries = u32(uint32(r.GetAttempts()))
	if r.GetRetryOn() != "" {
		p.RetryOn = r.GetRetryOn()
	}
	if t := r.GetPerTryTimeout(); t != nil {
		p.PerTryTimeout = dur(t.AsDuration())
	}
	return p
}

func redirectAction(rd *networkingapi.HTTPRedirect) *routev3.RedirectAction {
	a := &routev3.RedirectAction{ResponseCode: routev3.RedirectAction_MOVED_PERMANENTLY}
	if rd.GetUri() != "" {
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: rd.GetUri()}
	}
	if rd.GetAuthority() != "" {
		a.HostRedirect = rd.GetAuthority()
	}
	if rd.GetScheme() != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.GetScheme()}
	}
	switch rd.GetRedirectCode() {
	case 302:
		a.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		a.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		a.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		a.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	}
	return a
}

func directResponseAction(dr *networkingapi.HTTPDirectResponse) *routev3.DirectResponseAction {
	a := &routev3.DirectResponseAction{Status: dr.GetStatus()}
	if b := dr.GetBody(); b != nil {
		a.Body = dataSource(b)
	}
	return a
}

// defaultRoute sends everything to the service port's cluster: what a service
// without a VirtualService gets.
func defaultRoute(cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout:          dur(time.Duration(0)),
			RetryPolicy:      defaultRetryPolicy(),
		}},
	}
}
