package translate

import (
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// DestinationRule loadBalancer.consistentHash → route hash_policy. The cluster
// half (RING_HASH/MAGLEV) is in loadbalancer.go; the key to hash lives on the
// route action that sends traffic to the cluster:
//
//	httpHeaderName          hash_policy.header.header_name
//	httpCookie              hash_policy.cookie {name, path, ttl, attributes}; with a ttl Envoy
//	                        sets the cookie when the request lacks it (ttl 0s: a session cookie)
//	useSourceIp             hash_policy.connection_properties.source_ip
//	httpQueryParameterName  hash_policy.query_parameter.name
//
// The consistentHash used is the one of the cluster's effective traffic policy
// (cluster_traffic_policy.go), so route and cluster always agree. istiod picks it
// field-wise instead (subset portLevelSettings > subset > portLevelSettings >
// host) and skips portLevelSettings when the VirtualService destination names
// no port; both differ from this only where the cluster is not a hash cluster
// (Envoy then ignores hash_policy) or where istiod leaves a RING_HASH cluster
// without a key.

// HashPolicies returns the hash_policy of a route action whose destinations are
// the given outbound clusters (`outbound|<port>|<subset>|<host>`, exactly as the
// route names them), as seen by a proxy in proxyNamespace. One policy per
// cluster with a consistentHash key, in cluster order, without de-duplication
// (istiod appends one per weighted destination too); nil when none has one.
// Other cluster names (PassthroughCluster, ...) contribute nothing.
//
// Wiring (routes_virtualservice.go, routes_sidecar.go, routes_gateway.go):
//   - single destination: action.HashPolicy = HashPolicies(snap, ns, cluster); when
//     non-empty, the route's retry policy drops the previous_hosts retry host
//     predicate (istiod: retry.ConvertPolicy(policy, consistentHash=true)), so
//     retries stay on the hashed host;
//   - weighted destinations: HashPolicies(snap, ns, every weighted cluster...);
//     the retry policy keeps previous_hosts, as in istiod;
//   - defaultRoute(cluster): action.HashPolicy = HashPolicies(snap, ns, cluster);
//     retry policy unchanged (istiod's default route keeps previous_hosts).
//
// ns is the proxy's namespace (for gateways: the gateway proxy's namespace).
func HashPolicies(snap *model.Snapshot, proxyNamespace string, clusters ...string) []*routev3.RouteAction_HashPolicy {
	var out []*routev3.RouteAction_HashPolicy
	for _, name := range clusters {
		if hp := hashPolicyForCluster(snap, proxyNamespace, name); hp != nil {
			out = append(out, hp)
		}
	}
	return out
}

func hashPolicyForCluster(snap *model.Snapshot, proxyNamespace, cluster string) *routev3.RouteAction_HashPolicy {
	portStr, subset, host, ok := ParseOutboundClusterName(cluster)
	if !ok {
		return nil
	}
	port, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil {
		return nil
	}
	dr := snap.DestinationRuleFor(host, proxyNamespace)
	if dr == nil {
		return nil
	}
	if subset != "" {
		if _, defined := model.SubsetLabels(dr, subset); !defined {
			return nil // the route answers 503 (no such cluster); nothing to hash
		}
	}
	return consistentHashPolicy(clusterTrafficPolicy(dr, subset, uint32(port)).GetLoadBalancer().GetConsistentHash())
}

// consistentHashPolicy maps the hash key of a consistentHash to Envoy's hash policy.
func consistentHashPolicy(ch *networkingapi.LoadBalancerSettings_ConsistentHashLB) *routev3.RouteAction_HashPolicy {
	switch key := ch.GetHashKey().(type) {
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: key.HttpHeaderName},
		}}
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		c := key.HttpCookie
		cookie := &routev3.RouteAction_HashPolicy_Cookie{Name: c.GetName(), Path: c.GetPath(), Ttl: c.GetTtl()}
		for _, a := range c.GetAttributes() {
			cookie.Attributes = append(cookie.Attributes, &routev3.RouteAction_HashPolicy_CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: cookie}}
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: key.UseSourceIp},
		}}
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: key.HttpQueryParameterName},
		}}
	}
	return nil
}
