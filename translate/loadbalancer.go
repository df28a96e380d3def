package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// applyLoadBalancer maps DestinationRule trafficPolicy.loadBalancer onto the
// cluster. Unset means LEAST_REQUEST, Istio's default since 1.14.
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
}

// trafficPolicyForPort overlays the portLevelSettings entry for port, if any, on
// the policy's top-level settings, as Istio does.
func trafficPolicyForPort(p *networkingapi.TrafficPolicy, port uint32) *networkingapi.TrafficPolicy {
	if p == nil {
		return nil
	}
	out := &networkingapi.TrafficPolicy{
		LoadBalancer:     p.GetLoadBalancer(),
		ConnectionPool:   p.GetConnectionPool(),
		OutlierDetection: p.GetOutlierDetection(),
		Tls:              p.GetTls(),
	}
	for _, pl := range p.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != port {
			continue
		}
		if pl.GetLoadBalancer() != nil {
			out.LoadBalancer = pl.GetLoadBalancer()
		}
		if pl.GetConnectionPool() != nil {
			out.ConnectionPool = pl.GetConnectionPool()
		}
		if pl.GetOutlierDetection() != nil {
			out.OutlierDetection = pl.GetOutlierDetection()
		}
		if pl.GetTls() != nil {
			out.Tls = pl.GetTls()
		}
	}
	return out
}

// mergeTrafficPolicy gives a subset's settings precedence over the host's, field
// by field, as Istio does.
func mergeTrafficPolicy(base, subset *networkingapi.TrafficPolicy) *networkingapi.TrafficPolicy {
	if subset == nil {
		return base
	}
	if base == nil {
		return subset
	}
	out := proto.Clone(base).(*networkingapi.TrafficPolicy)
	if subset.GetLoadBalancer() != nil {
		out.LoadBalancer = subset.GetLoadBalancer()
	}
	if subset.GetConnectionPool() != nil {
		out.ConnectionPool = subset.GetConnectionPool()
	}
	if subset.GetOutlierDetection() != nil {
		out.OutlierDetection = subset.GetOutlierDetection()
	}
	if subset.GetTls() != nil {
		out.Tls = subset.GetTls()
	}
	return out
}
