package model

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLocalities(t *testing.T) {
	str := func(s string) *string { return &s }
	node := func(name string, l map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	}
	pod := func(name, ip, nodeName string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels},
			Spec: corev1.PodSpec{NodeName: nodeName}, Status: corev1.PodStatus{PodIP: ip}}
	}
	in := &Inputs{
		Nodes: []*corev1.Node{
			node("n1", map[string]string{LabelRegion: "r1", LabelZone: "z1", LabelSubZone: "s1"}),
			node("n2", map[string]string{LabelRegion: "r1"}),
		},
		Pods: []*corev1.Pod{
			pod("on-n1", "10.0.0.1", "n1", nil),
			pod("labelled", "10.0.0.2", "n1", map[string]string{LabelLocality: "r9.z9.s9"}),
			pod("client", "10.0.0.9", "n2", nil),
		},
		Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "ns"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{
			ObjectMeta:  metav1.ObjectMeta{Name: "svc-1", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.1"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "on-n1"}},
				{Addresses: []string{"10.0.0.2"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "labelled"}},
				{Addresses: []string{"10.0.0.3"}, NodeName: str("n2"), Zone: str("z2")}, // no pod: node region, slice zone
				{Addresses: []string{"10.0.0.4"}, Zone: str("z3")},                      // zone only
			},
		}},
	}
	s := Build(in, 1)
	want := map[string]string{"10.0.0.1": "r1/z1/s1", "10.0.0.2": "r9/z9/s9", "10.0.0.3": "r1/z2", "10.0.0.4": "/z3"}
	for _, ep := range s.Endpoints("svc.ns.svc.cluster.local") {
		if got := ep.Loc().String(); got != want[ep.Address] {
			t.Errorf("endpoint %s: locality %q, want %q", ep.Address, got, want[ep.Address])
		}
	}
	p := &Proxy{PodName: "client", Namespace: "ns"}
	if got := s.ProxyLocality(p).String(); got != "r1" {
		t.Errorf("proxy on n2: %q, want r1 (its node's)", got)
	}
	p.Locality = Locality{Region: "r5", Zone: "z5"}
	if got := s.ProxyLocality(p).String(); got != "r5/z5" {
		t.Errorf("proxy with its own node locality: %q, want r5/z5 (Envoy's node locality wins)", got)
	}
	// No cluster balances by locality: endpoints are the same for every viewer.
	if s.LocalityLB() || !s.ScopeFor(p).Locality.IsZero() {
		t.Errorf("LocalityLB %v, scope locality %v: want off without outlierDetection or localityLbSetting", s.LocalityLB(), s.ScopeFor(p).Locality)
	}
}

func TestLocalityMatches(t *testing.T) {
	l := Locality{Region: "r1", Zone: "z1", SubZone: "s1"}
	for pattern, want := range map[string]bool{"*": true, "r1/*": true, "r1/z1/*": true, "r1/z1/s1": true, "r1/z2/*": false, "r2": false, "r1": true} {
		if got := l.Matches(pattern); got != want {
			t.Errorf("%v matches %q: %v, want %v", l, pattern, got, want)
		}
	}
}
