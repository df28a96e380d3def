package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// defaultMinimumRingSize is Envoy's default, which Istio spells out when
// consistentHash names no algorithm.
const defaultMinimumRingSize = 1024

// applyLoadBalancer maps DestinationRule trafficPolicy.loadBalancer onto the
// cluster, as istiod's applyLoadBalancer does. Unset means LEAST_REQUEST, Istio's
// default since 1.14. consistentHash overrides simple (the API makes them a
// oneof): RING_HASH unless maglev is named. The hash key itself is not a cluster
// setting; it becomes the route's hash_policy (route_hash_policy.go).
//
// Not translated yet (validation warns): simple PASSTHROUGH, localityLbSetting,
// zoneAwareLbSetting, warmupDurationSecs, warmup.
func applyLoadBalancer(c *clusterv3.Cluster, lb *networkingapi.LoadBalancerSettings) {
	c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	switch lb.GetSimple() {
	case networkingapi.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case networkingapi.LoadBalancerSettings_RANDOM:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case networkingapi.LoadBalancerSettings_LEAST_REQUEST, networkingapi.LoadBalancerSettings_LEAST_CONN:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	}
	applyConsistentHash(c, lb.GetConsistentHash())
}

func applyConsistentHash(c *clusterv3.Cluster, ch *networkingapi.LoadBalancerSettings_ConsistentHashLB) {
	if ch == nil {
		return
	}
	switch {
	case ch.GetMaglev() != nil:
		c.LbPolicy = clusterv3.Cluster_MAGLEV
		if ts := ch.GetMaglev().GetTableSize(); ts != 0 {
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{
				TableSize: wrapperspb.UInt64(ts),
			}}
		}
	case ch.GetRingHash() != nil:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		if n := ch.GetRingHash().GetMinimumRingSize(); n != 0 {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(n),
			}}
		}
	default:
		n := uint64(defaultMinimumRingSize)
		//nolint:staticcheck // the deprecated field still applies, as in istiod
		if legacy := ch.GetMinimumRingSize(); legacy != 0 {
			n = legacy
		}
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
			MinimumRingSize: wrapperspb.UInt64(n),
		}}
	}
}
