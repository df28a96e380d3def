package translate

import (
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// clusterTrafficPolicy is the DestinationRule traffic policy that applies to the
// cluster outbound|port|subset|host, by Istio's precedence (istiod's
// MergeSubsetTrafficPolicy):
//
//  1. The host-level policy; if its portLevelSettings has an entry for the port,
//     that entry replaces it whole: fields it leaves out fall back to defaults,
//     they are not inherited from the host level (the API says so explicitly).
//  2. The subset's policy on top: without a portLevelSettings entry for the port,
//     each of loadBalancer, connectionPool, outlierDetection, tls it sets replaces
//     the one from step 1; with such an entry, that entry replaces all four,
//     unset ones included.
//
// The first portLevelSettings entry for a port wins. subset "" is the service's
// own cluster. The result is never mutated by callers.
func clusterTrafficPolicy(dr *networking.DestinationRule, subset string, port uint32) *networkingapi.TrafficPolicy {
	if dr == nil {
		return nil
	}
	policy, _ := policyForPort(dr.Spec.GetTrafficPolicy(), port)
	if subset == "" {
		return policy
	}
	var subsetPolicy *networkingapi.TrafficPolicy
	for _, ss := range dr.Spec.GetSubsets() {
		if ss.GetName() == subset {
			subsetPolicy = ss.GetTrafficPolicy()
			break
		}
	}
	if subsetPolicy == nil {
		return policy
	}
	subsetPolicy, portLevel := policyForPort(subsetPolicy, port)
	if policy == nil {
		return subsetPolicy
	}
	merged := &networkingapi.TrafficPolicy{
		LoadBalancer:     policy.GetLoadBalancer(),
		ConnectionPool:   policy.GetConnectionPool(),
		OutlierDetection: policy.GetOutlierDetection(),
		Tls:              policy.GetTls(),
	}
	if portLevel || subsetPolicy.GetLoadBalancer() != nil {
		merged.LoadBalancer = subsetPolicy.GetLoadBalancer()
	}
	if portLevel || subsetPolicy.GetConnectionPool() != nil {
		merged.ConnectionPool = subsetPolicy.GetConnectionPool()
	}
	if portLevel || subsetPolicy.GetOutlierDetection() != nil {
		merged.OutlierDetection = subsetPolicy.GetOutlierDetection()
	}
	if portLevel || subsetPolicy.GetTls() != nil {
		merged.Tls = subsetPolicy.GetTls()
	}
	return merged
}

// policyForPort returns the portLevelSettings entry for port as a whole policy
// (and true), or the policy's own top-level fields.
func policyForPort(p *networkingapi.TrafficPolicy, port uint32) (*networkingapi.TrafficPolicy, bool) {
	if p == nil {
		return nil, false
	}
	for _, pl := range p.GetPortLevelSettings() {
		if pl.GetPort() != nil && pl.GetPort().GetNumber() == port {
			return &networkingapi.TrafficPolicy{
				LoadBalancer:     pl.GetLoadBalancer(),
				ConnectionPool:   pl.GetConnectionPool(),
				OutlierDetection: pl.GetOutlierDetection(),
				Tls:              pl.GetTls(),
			}, true
		}
	}
	return &networkingapi.TrafficPolicy{
		LoadBalancer:     p.GetLoadBalancer(),
		ConnectionPool:   p.GetConnectionPool(),
		OutlierDetection: p.GetOutlierDetection(),
		Tls:              p.GetTls(),
	}, false
}
