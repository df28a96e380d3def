package model

import (
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// Locality is region/zone/subzone, as Envoy's core.Locality and Istio's
// localityLbSetting name them.
type Locality struct {
	Region, Zone, SubZone string
}

// Labels Istio reads localities from.
const (
	LabelRegion  = "topology.kubernetes.io/region"
	LabelZone    = "topology.kubernetes.io/zone"
	LabelSubZone = "topology.istio.io/subzone"
	// LabelLocality on a pod overrides its node's: "region.zone.subzone".
	LabelLocality = "istio-locality"
)

// IsZero reports whether nothing is known.
func (l Locality) IsZero() bool { return l == Locality{} }

// String is "region/zone/subzone" without trailing empty parts.
func (l Locality) String() string {
	return strings.TrimRight(l.Region+"/"+l.Zone+"/"+l.SubZone, "/")
}

// ParseLocality reads "region/zone/subzone" (a ServiceEntry endpoint's
// locality; parts may be left out from the right).
func ParseLocality(s string) Locality {
	p := strings.SplitN(s, "/", 3)
	for len(p) < 3 {
		p = append(p, "")
	}
	return Locality{Region: p[0], Zone: p[1], SubZone: p[2]}
}

// Loc is the endpoint's locality, zero when unknown.
func (e *Endpoint) Loc() Locality {
	if e.Locality == nil {
		return Locality{}
	}
	return *e.Locality
}

// parsedLocality is ParseLocality for an endpoint: nil when empty.
func parsedLocality(s string) *Locality {
	if s == "" {
		return nil
	}
	l := ParseLocality(s)
	return &l
}

// Matches reports whether l lies in the locality pattern ("region/zone/*",
// "region/*", "*"), as localityLbSetting's from/to are written.
func (l Locality) Matches(pattern string) bool {
	if pattern == "*" || pattern == "" {
		return true
	}
	want := strings.SplitN(pattern, "/", 3)
	have := []string{l.Region, l.Zone, l.SubZone}
	for i, w := range want {
		if w == "*" {
			return true
		}
		if have[i] != w {
			return false
		}
	}
	return true
}

// localities resolves where pods run: the pod's istio-locality label, else
// its node's region/zone/subzone labels, else (zone only) the EndpointSlice
// endpoint's zone.
type localities struct {
	nodes map[string]Locality // by node name
	pods  map[string]Locality // by namespace/name, for pods with a known locality
	// shared holds one value per distinct locality, for endpoints to point at.
	shared map[Locality]*Locality
}

func newLocalities(in *Inputs) *localities {
	l := &localities{nodes: map[string]Locality{}, pods: map[string]Locality{}, shared: map[Locality]*Locality{}}
	for _, n := range in.Nodes {
		if loc := (Locality{n.Labels[LabelRegion], n.Labels[LabelZone], n.Labels[LabelSubZone]}); !loc.IsZero() {
			l.nodes[n.Name] = loc
		}
	}
	for _, p := range in.Pods {
		if loc := l.of(p, nil, nil); !loc.IsZero() {
			l.pods[p.Namespace+"/"+p.Name] = loc
		}
	}
	return l
}

// endpoint is the shared value of an endpoint's locality, nil when unknown.
func (l *localities) endpoint(pod *corev1.Pod, nodeName, zone *string) *Locality {
	loc := l.of(pod, nodeName, zone)
	if loc.IsZero() {
		return nil
	}
	if p, ok := l.shared[loc]; ok {
		return p
	}
	p := new(Locality) // not &loc: that would move loc to the heap on every call
	*p = loc
	l.shared[loc] = p
	return p
}

func (l *localities) of(pod *corev1.Pod, nodeName, zone *string) Locality {
	if pod != nil {
		if v := pod.Labels[LabelLocality]; v != "" {
			return ParseLocality(strings.ReplaceAll(v, ".", "/"))
		}
	}
	node := ""
	if pod != nil {
		node = pod.Spec.NodeName
	}
	if node == "" && nodeName != nil {
		node = *nodeName
	}
	loc := l.nodes[node]
	if loc.Zone == "" && zone != nil {
		loc.Zone = *zone
	}
	return loc
}

// ProxyLocality is where a proxy runs: its Envoy node's locality, else its
// pod's (the pod named by its node ID).
func (s *Snapshot) ProxyLocality(p *Proxy) Locality {
	if !p.Locality.IsZero() {
		return p.Locality
	}
	if s.localities == nil {
		return Locality{}
	}
	return s.localities.pods[p.Namespace+"/"+p.PodName]
}

// ViewerLocality is the locality a View was made for (Scope.Locality).
func (s *Snapshot) ViewerLocality() Locality { return s.viewerLocality }

// LocalityLB reports whether some cluster balances by locality (failover or
// distribute), so that endpoints are built per viewer locality.
func (s *Snapshot) LocalityLB() bool { return s.localityLB }

// noteLocalityUse: locality-aware endpoints cost one EDS copy per proxy
// locality, so only when some endpoint has a locality and a setting asks for
// it: an outlierDetection (istiod's failover by default), or an explicit
// localityLbSetting in a DestinationRule or the mesh config.
func (s *Snapshot) noteLocalityUse() {
	s.warnFailoverPriorityLabels()
	s.endpointLocality = anyLocality(s.endpoints)
	if !s.endpointLocality {
		return
	}
	if hasLocalitySetting(s.Mesh.GetLocalityLbSetting()) {
		s.localityLB = true
		return
	}
	for _, dr := range s.DestinationRules {
		tp := dr.Spec.GetTrafficPolicy()
		if tp.GetOutlierDetection() != nil || tp.GetLoadBalancer().GetLocalityLbSetting() != nil {
			s.localityLB = true
			return
		}
		for _, pl := range tp.GetPortLevelSettings() {
			if pl.GetOutlierDetection() != nil || pl.GetLoadBalancer().GetLocalityLbSetting() != nil {
				s.localityLB = true
				return
			}
		}
		for _, ss := range dr.Spec.GetSubsets() {
			if ss.GetTrafficPolicy().GetOutlierDetection() != nil || ss.GetTrafficPolicy().GetLoadBalancer().GetLocalityLbSetting() != nil {
				s.localityLB = true
				return
			}
		}
	}
}

// anyLocality reports whether some endpoint has a locality.
func anyLocality(endpoints map[string][]*Endpoint) bool {
	for _, eps := range endpoints {
		for _, ep := range eps {
			if ep.Locality != nil {
				return true
			}
		}
	}
	return false
}

func hasLocalitySetting(l interface {
	GetDistribute() []*networkingapi.LocalityLoadBalancerSetting_Distribute
	GetFailover() []*networkingapi.LocalityLoadBalancerSetting_Failover
	GetFailoverPriority() []string
}) bool {
	return len(l.GetDistribute()) > 0 || len(l.GetFailover()) > 0 || len(l.GetFailoverPriority()) > 0
}

// warnFailoverPriorityLabels: failoverPriority on labels other than the
// topology ones would make endpoints differ per proxy's labels; mizzen ranks
// by region, zone and subzone only and says so for the rest.
func (s *Snapshot) warnFailoverPriorityLabels() {
	check := func(kind, ns, name, field string, lbs *networkingapi.LocalityLoadBalancerSetting) {
		for i, l := range lbs.GetFailoverPriority() {
			switch strings.SplitN(l, "=", 2)[0] {
			case LabelRegion, LabelZone, LabelSubZone:
				continue
			}
			s.addError(ConfigError{Kind: kind, Namespace: ns, Name: name, Field: field + ".failoverPriority[" + strconv.Itoa(i) + "]",
				Code: "UnsupportedField", Warning: true,
				Message: "failoverPriority label " + l + " is not applied: mizzen ranks endpoints by the topology labels " +
					LabelRegion + ", " + LabelZone + " and " + LabelSubZone + " only"})
		}
	}
	check("ConfigMap", MeshConfigMapNamespace, MeshConfigMapName, "data.mesh.localityLbSetting", s.Mesh.GetLocalityLbSetting())
	for _, dr := range s.DestinationRules {
		check("DestinationRule", dr.Namespace, dr.Name, "spec.trafficPolicy.loadBalancer.localityLbSetting", dr.Spec.GetTrafficPolicy().GetLoadBalancer().GetLocalityLbSetting())
	}
}
