package translate

import (
	"fmt"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
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
	// tls: the listener terminates TLS (the scheme a port-only redirect keeps).
	tls bool
}

// virtualServiceRoutes converts the http section of one VirtualService into Envoy
// routes, in order: Istio's first-match-wins semantics map onto Envoy's ordered
// route list, one Envoy route per match block. Like istiod, the list stops
// after a catch-all (no match, or a "/" prefix or ".*" regex with no header or
// query condition): Envoy would never reach what follows, and the route
// tables then compare equal with istiod's.
func virtualServiceRoutes(snap *model.Snapshot, vs *networking.VirtualService, scope routeScope) []*routev3.Route {
	var out []*routev3.Route
	for i, hr := range vs.Spec.GetHttp() {
		if len(out) > 0 && catchAllRoute(out[len(out)-1]) {
			break
		}
		matches := hr.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingapi.HTTPMatchRequest{nil}
		}
		for _, m := range matches {
			if !matchApplies(m, vs, scope) {
				continue
			}
			r := &routev3.Route{
				Name:       routeName(vs, hr, m, i),
				Match:      routeMatch(m),
				Metadata:   istioConfigMetadata("virtual-service", vs.Namespace, vs.Name),
				StatPrefix: m.GetStatPrefix(),
			}
			authority := applyHeaderOperations(hr.GetHeaders(), r)
			switch {
			case hr.GetRedirect() != nil:
				r.Action = &routev3.Route_Redirect{Redirect: redirectAction(hr.GetRedirect(), scope.port, scope.tls)}
			case hr.GetDirectResponse() != nil:
				r.Action = &routev3.Route_DirectResponse{DirectResponse: directResponseAction(hr.GetDirectResponse())}
			default:
				applyRouteAction(snap, vs, hr, scope, r, authority)
			}
			applyPerFilterConfig(hr, r)
			out = append(out, r)
			if catchAllRoute(r) {
				break
			}
		}
	}
	return out
}

// catchAllRoute: the route matches every request (istiod's IsCatchAllRoute).
func catchAllRoute(r *routev3.Route) bool {
	m := r.GetMatch()
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || len(m.GetDynamicMetadata()) > 0 {
		return false
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return p.Prefix == "/"
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return p.PathSeparatedPrefix == "/"
	case *routev3.RouteMatch_SafeRegex:
		return p.SafeRegex.GetRegex() == ".*"
	}
	return false
}

// applyPerFilterConfig sets the route's fault and CORS policy for the filters
// every outbound HCM carries (see route_fault.go, route_cors.go).
func applyPerFilterConfig(hr *networkingapi.HTTPRoute, r *routev3.Route) {
	if f := faultPerRoute(hr.GetFault()); f != nil {
		if r.TypedPerFilterConfig == nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		r.TypedPerFilterConfig[faultFilterName] = mustAny(f)
	}
	if c := corsPerRoute(hr.GetCorsPolicy()); c != nil {
		if r.TypedPerFilterConfig == nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		r.TypedPerFilterConfig[corsFilterName] = mustAny(c)
	}
}

// routeName is the http route's name, joined with the match's name as Istio
// does ("route.match"); unnamed routes get "<ns>.<vs>.http[<i>]".
func routeName(vs *networking.VirtualService, hr *networkingapi.HTTPRoute, m *networkingapi.HTTPMatchRequest, i int) string {
	name := hr.GetName()
	if name == "" {
		name = fmt.Sprintf("%s.%s.http[%d]", vs.Namespace, vs.Name, i)
	}
	if m.GetName() != "" {
		name += "." + m.GetName()
	}
	return name
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

// applyRouteAction forwards the request: destinations (one cluster, or weighted
// clusters with their own header operations), timeout, rewrite, mirrors and
// retries. authority is the Host the route-level headers asked for.
func applyRouteAction(snap *model.Snapshot, vs *networking.VirtualService, hr *networkingapi.HTTPRoute, scope routeScope, r *routev3.Route, authority string) {
	action := &routev3.RouteAction{Timeout: dur(0)}
	if t := hr.GetTimeout(); t != nil {
		action.Timeout = dur(t.AsDuration())
	}
	if authority = applyRewrite(hr.GetRewrite(), action, authority); authority != "" {
		action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: authority}
	}
	action.RequestMirrorPolicies = mirrorPolicies(snap, hr, vs.Namespace, scope.port)
	var clusters []string // in route order, for consistent-hash keys
	if dests := hr.GetRoute(); len(dests) == 1 {
		// One destination: its header operations join the route's, after them.
		cluster := destinationCluster(snap, dests[0].GetDestination(), vs.Namespace, scope.port)
		clusters = append(clusters, cluster)
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: cluster}
		if a := applyHeaderOperations(dests[0].GetHeaders(), r); a != "" && action.HostRewriteSpecifier == nil {
			action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: a}
		}
	} else {
		var weighted []*routev3.WeightedCluster_ClusterWeight
		for _, d := range dests {
			if d.GetWeight() == 0 {
				continue // Istio drops zero-weight destinations from a split
			}
			ops := translateHeaders(d.GetHeaders())
			cw := &routev3.WeightedCluster_ClusterWeight{
				Name:                    destinationCluster(snap, d.GetDestination(), vs.Namespace, scope.port),
				Weight:                  u32(uint32(d.GetWeight())),
				RequestHeadersToAdd:     ops.requestAdd,
				RequestHeadersToRemove:  ops.requestRemove,
				ResponseHeadersToAdd:    ops.responseAdd,
				ResponseHeadersToRemove: ops.responseRemove,
			}
			if ops.authority != "" {
				cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: ops.authority}
			}
			weighted = append(weighted, cw)
			clusters = append(clusters, cw.Name)
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	action.RetryPolicy = retryPolicy(hr.GetRetries(), snap.Mesh)
	action.HashPolicy = HashPolicies(snap, scope.sourceNS, clusters...)
	if len(action.HashPolicy) > 0 && len(hr.GetRoute()) == 1 && action.RetryPolicy != nil {
		// A retry must stay on the hashed host, as in istiod.
		action.RetryPolicy.RetryHostPredicate = nil
		action.RetryPolicy.HostSelectionRetryMaxAttempts = 0
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

// defaultRoute sends everything to the service port's cluster: what a service
// without a VirtualService gets, with the mesh's default retries.
func defaultRoute(snap *model.Snapshot, proxyNamespace, cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout:          dur(time.Duration(0)),
			RetryPolicy:      retryPolicy(nil, snap.Mesh),
			HashPolicy:       HashPolicies(snap, proxyNamespace, cluster),
		}},
	}
}
