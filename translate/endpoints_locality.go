package translate

import (
	"math"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Locality load balancing, as istiod applies localityLbSetting (DestinationRule
// trafficPolicy.loadBalancer.localityLbSetting, else MeshConfig's):
//
//   - distribute: the first rule whose `from` matches the caller's locality
//     weighs the endpoints' localities by its `to` (a pattern's weight split
//     over the localities it matches, by their endpoint counts); localities
//     it does not name get nothing. The cluster gets locality-weighted LB.
//   - otherwise, when the cluster has outlierDetection (failover needs
//     ejections to ever move): priorities by nearness to the caller — same
//     region/zone/subzone 0, same zone 1, same region 2, else 3 — with
//     `failover` from→to region rules putting other regions after the named
//     one, and failoverPriority's topology labels ranking first.
//   - enabled: false turns it off.
//
// Priorities and weights depend on the caller's locality: endpoints are then
// built per locality (model.Scope.Locality), never per proxy.

// localitySetting is the cluster's effective setting, nil when off.
func localitySetting(snap *model.Snapshot, policy *networkingapi.TrafficPolicy) *networkingapi.LocalityLoadBalancerSetting {
	lbs := policy.GetLoadBalancer().GetLocalityLbSetting()
	if lbs == nil {
		lbs = snap.Mesh.GetLocalityLbSetting()
	}
	if lbs == nil {
		// istiod's mesh default is {enabled: true}: failover whenever the
		// cluster has outlierDetection.
		return &networkingapi.LocalityLoadBalancerSetting{}
	}
	if lbs.GetEnabled() != nil && !lbs.GetEnabled().GetValue() {
		return nil
	}
	return lbs
}

// applyLocalityCluster turns on locality-weighted LB for distribute settings.
func applyLocalityCluster(snap *model.Snapshot, c *clusterv3.Cluster, policy *networkingapi.TrafficPolicy) {
	if len(localitySetting(snap, policy).GetDistribute()) == 0 {
		return
	}
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
	}
	c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
		LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
	}
}

// withLocalityLB applies the cluster's locality setting to its endpoints, as
// the viewer's locality sees them. A snapshot without locality LB keeps
// endpoints identical for every viewer.
func withLocalityLB(snap *model.Snapshot, cla *endpointv3.ClusterLoadAssignment, policy *networkingapi.TrafficPolicy) *endpointv3.ClusterLoadAssignment {
	lbs := localitySetting(snap, policy)
	if lbs == nil || len(cla.Endpoints) == 0 {
		return cla
	}
	if len(lbs.GetDistribute()) > 0 {
		// Every locality carries its weight, so callers no rule is `from`
		// balance as without the setting (the cluster weighs localities).
		for _, g := range cla.Endpoints {
			g.LoadBalancingWeight = u32(uint32(len(g.LbEndpoints)))
		}
		if snap.LocalityLB() {
			distribute(snap.ViewerLocality(), cla, lbs.GetDistribute())
		}
		return cla
	}
	if !snap.LocalityLB() || policy.GetOutlierDetection() == nil {
		return cla
	}
	me := snap.ViewerLocality()
	prio := make([]int, len(cla.Endpoints))
	for i, g := range cla.Endpoints {
		loc := localityOf(g)
		p := nearness(me, loc)
		if p == 3 {
			for _, f := range lbs.GetFailover() {
				if f.GetFrom() == me.Region {
					if loc.Region != f.GetTo() {
						p = 4
					}
					break
				}
			}
		}
		if fp := lbs.GetFailoverPriority(); len(fp) > 0 {
			// Only topology labels: they compare localities, the same for
			// every caller of one locality (other labels would make the
			// endpoints differ per proxy; the model warns about them).
			q := failoverPriorityRank(me, loc, fp)
			if len(lbs.GetFailover()) > 0 {
				p = q*5 + p
			} else {
				p = q
			}
		}
		prio[i] = p
	}
	// Envoy wants priorities 0..N without gaps.
	distinct := map[int]bool{}
	for _, p := range prio {
		distinct[p] = true
	}
	levels := make([]int, 0, len(distinct))
	for p := range distinct {
		levels = append(levels, p)
	}
	sort.Ints(levels)
	rank := map[int]uint32{}
	for i, p := range levels {
		rank[p] = uint32(i)
	}
	for i, g := range cla.Endpoints {
		g.Priority = rank[prio[i]]
	}
	sort.SliceStable(cla.Endpoints, func(i, j int) bool { return cla.Endpoints[i].Priority < cla.Endpoints[j].Priority })
	return cla
}

func localityOf(g *endpointv3.LocalityLbEndpoints) model.Locality {
	l := g.GetLocality()
	return model.Locality{Region: l.GetRegion(), Zone: l.GetZone(), SubZone: l.GetSubZone()}
}

// nearness: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere.
func nearness(me, l model.Locality) int {
	switch {
	case me.Region == "" || me.Region != l.Region:
		return 3
	case me.Zone != l.Zone:
		return 2
	case me.SubZone != l.SubZone:
		return 1
	}
	return 0
}

// failoverPriorityRank is how many of the labels, in order, the endpoint's
// locality does not share with the caller's (0: all match).
func failoverPriorityRank(me, l model.Locality, labels []string) int {
	for i, k := range labels {
		var a, b string
		switch k {
		case model.LabelRegion:
			a, b = me.Region, l.Region
		case model.LabelZone:
			a, b = me.Zone, l.Zone
		case model.LabelSubZone:
			a, b = me.SubZone, l.SubZone
		default:
			continue // not a topology label: not applied (reported by the model)
		}
		if a != b {
			return len(labels) - i
		}
	}
	return 0
}

// distribute applies the first rule whose from matches the caller.
func distribute(me model.Locality, cla *endpointv3.ClusterLoadAssignment, rules []*networkingapi.LocalityLoadBalancerSetting_Distribute) {
	for _, r := range rules {
		if !me.Matches(r.GetFrom()) {
			continue
		}
		weight := make([]uint32, len(cla.Endpoints))
		claimed := make([]bool, len(cla.Endpoints))
		to := sortedKeys(r.GetTo())
		for _, pattern := range to {
			var idx []int
			total := 0
			for i, g := range cla.Endpoints {
				if !claimed[i] && localityOf(g).Matches(pattern) {
					idx = append(idx, i)
					total += len(g.LbEndpoints)
				}
			}
			for _, i := range idx {
				claimed[i] = true
				w := math.Ceil(float64(len(cla.Endpoints[i].LbEndpoints)) * float64(r.GetTo()[pattern]) / float64(total))
				weight[i] = uint32(w)
			}
		}
		var kept []*endpointv3.LocalityLbEndpoints
		for i, g := range cla.Endpoints {
			if claimed[i] && weight[i] > 0 {
				g.LoadBalancingWeight = u32(weight[i])
				kept = append(kept, g)
			}
		}
		cla.Endpoints = kept
		return
	}
}
