package translate

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// OutboundEndpoints builds the load assignments of OutboundClusters: the view of
// a proxy whose namespace holds no DestinationRule and is named by no exportTo.
func OutboundEndpoints(snap *model.Snapshot) []*endpointv3.ClusterLoadAssignment {
	return OutboundEndpointsFor(snap, "")
}

// OutboundEndpointsFor builds a ClusterLoadAssignment for every EDS cluster that
// OutboundClustersFor builds for the same namespace (an empty one when no
// endpoint is ready, so Envoy never waits on a cluster that mizzen has nothing
// to say about). Subsets, hence assignments, depend on the DestinationRules the
// namespace sees; namespaces with equal DestinationRuleViewKey share the output.
func OutboundEndpointsFor(snap *model.Snapshot, proxyNamespace string) []*endpointv3.ClusterLoadAssignment {
	var out []*endpointv3.ClusterLoadAssignment
	for _, se := range OutboundEndpointsByService(snap, proxyNamespace) {
		out = append(out, se.Build()...)
	}
	return out
}

// ServiceEndpoints is the load assignments of one service, built on demand.
// With config unchanged they depend only on the service's endpoints
// (Snapshot.EndpointsHashOf), so a caller holding the previous ones may keep
// them instead of calling Build: an endpoint change then costs its own service.
type ServiceEndpoints struct {
	Hostname string
	Build    func() []*endpointv3.ClusterLoadAssignment
}

// OutboundEndpointsByService is OutboundEndpointsFor, one service at a time.
func OutboundEndpointsByService(snap *model.Snapshot, proxyNamespace string) []ServiceEndpoints {
	var out []ServiceEndpoints
	for _, svc := range snap.Services() {
		if !usesEDS(svc) {
			continue // DNS and passthrough clusters carry or need no endpoints
		}
		out = append(out, ServiceEndpoints{Hostname: svc.Hostname, Build: func() []*endpointv3.ClusterLoadAssignment {
			eps := snap.Endpoints(svc.Hostname)
			dr := snap.DestinationRuleFor(svc.Hostname, proxyNamespace)
			var out []*endpointv3.ClusterLoadAssignment
			for _, port := range svc.Ports {
				out = append(out, withLocalityLB(snap, loadAssignment(snap, OutboundClusterName(port.Port, "", svc.Hostname), port, eps, nil),
					clusterTrafficPolicy(dr, "", port.Port)))
				for _, ss := range model.Subsets(dr) {
					out = append(out, withLocalityLB(snap, loadAssignment(snap, OutboundClusterName(port.Port, ss.GetName(), svc.Hostname), port, eps, ss.GetLabels()),
						clusterTrafficPolicy(dr, ss.GetName(), port.Port)))
				}
			}
			return out
		}})
	}
	return out
}

// loadAssignment keeps the endpoints whose labels carry every subset label,
// each with the metadata auto mTLS matches on (mtls_outbound.go).
func loadAssignment(snap *model.Snapshot, cluster string, port *model.Port, eps []*model.Endpoint, subset map[string]string) *endpointv3.ClusterLoadAssignment {
	// One LocalityLbEndpoints per locality, in locality order (endpoints
	// without one first, as the single group they always were). Groups are
	// found by the endpoints' shared *Locality: no map for the common case
	// of one locality or none.
	var groups []*endpointv3.LocalityLbEndpoints
	var keys []*model.Locality
	for _, ep := range eps {
		target, ok := ep.Ports[port.Name]
		if !ok {
			continue
		}
		if !model.LabelsMatch(subset, ep.Labels) {
			continue
		}
		gi := -1
		for i, k := range keys {
			if k == ep.Locality || (k != nil && ep.Locality != nil && *k == *ep.Locality) {
				gi = i
				break
			}
		}
		if gi < 0 {
			g := &endpointv3.LocalityLbEndpoints{}
			if l := ep.Locality; l != nil {
				g.Locality = &corev3.Locality{Region: l.Region, Zone: l.Zone, SubZone: l.SubZone}
			}
			gi = len(groups)
			groups, keys = append(groups, g), append(keys, ep.Locality)
		}
		groups[gi].LbEndpoints = append(groups[gi].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ep.Address, target)}},
			HealthStatus:   corev3.HealthStatus_HEALTHY,
			Metadata:       endpointMetadata(snap, ep, target),
		})
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: groups}
	if len(groups) > 1 {
		sort.SliceStable(groups, func(i, j int) bool { return localityOf(groups[i]).String() < localityOf(groups[j]).String() })
	}
	return cla
}
