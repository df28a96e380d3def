package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// serviceCluster builds the outbound cluster of one service port by how its
// endpoints are found: EDS for Kubernetes services and STATIC ServiceEntries,
// DNS clusters with the endpoints inline for DNS ServiceEntries, an original-
// destination cluster for resolution NONE.
func serviceCluster(snap *model.Snapshot, name string, svc *model.Service, port *model.Port, policy *networkingapi.TrafficPolicy, eps []*model.Endpoint, subset map[string]string) *clusterv3.Cluster {
	switch svc.Resolution {
	case model.ResolutionDNS, model.ResolutionDNSRoundRobin:
		c := edsCluster(snap, name, port, policy)
		c.EdsClusterConfig = nil
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		if svc.Resolution == model.ResolutionDNSRoundRobin {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		}
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
		cla := loadAssignment(snap, name, port, eps, subset)
		if svc.Resolution == model.ResolutionDNSRoundRobin && len(cla.Endpoints) > 0 && len(cla.Endpoints[0].LbEndpoints) > 1 {
			// LOGICAL_DNS takes exactly one endpoint; Istio uses the first.
			cla.Endpoints[0].LbEndpoints = cla.Endpoints[0].LbEndpoints[:1]
		}
		c.LoadAssignment = cla
		return c
	case model.ResolutionPassthrough:
		if svc.Headless {
			return headlessCluster(snap, name, port, policy)
		}
		return &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
			ConnectTimeout:       dur(defaultConnectTimeout),
			CircuitBreakers:      defaultCircuitBreakers(),
		}
	}
	return edsCluster(snap, name, port, policy)
}

// usesEDS reports whether the service's clusters get their endpoints over EDS.
func usesEDS(svc *model.Service) bool { return svc.Resolution == model.ResolutionEDS }

// headlessCluster is a headless Service port's cluster: original destination
// (the pod the client resolved and dialed, as istiod builds it), with the
// DestinationRule's connection pool and outlier detection; load balancing is
// the client's choice of address, so lb_policy is CLUSTER_PROVIDED.
func headlessCluster(snap *model.Snapshot, name string, port *model.Port, policy *networkingapi.TrafficPolicy) *clusterv3.Cluster {
	c := edsCluster(snap, name, port, policy)
	c.EdsClusterConfig = nil
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
	c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	c.LbConfig = nil
	return c
}
