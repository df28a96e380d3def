package model

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// memoMesh: services a and b, each with one slice of two pod endpoints, on
// node n1 (zone z1).
func memoMesh() *Inputs {
	in := &Inputs{Nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{LabelRegion: "r", LabelZone: "z1"}}}}}
	for k, name := range []string{"a", "b"} {
		in.Services = append(in.Services, service(name, corev1.ServicePort{Name: "http", Port: 80}))
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
		}
		for i := range 2 {
			pod := fmt.Sprintf("%s-%d", name, i)
			ip := fmt.Sprintf("10.1.%d.%d", k, i+1)
			in.Pods = append(in.Pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: "default", Labels: map[string]string{"app": name, "version": "v1"}},
				Spec: corev1.PodSpec{ServiceAccountName: name, NodeName: "n1"}, Status: corev1.PodStatus{PodIP: ip}})
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod}})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	return in
}

// With a HashCache, a service whose slices, pods and nodes did not change
// keeps the last build's endpoints; anything it was made of that changed
// makes it built again, and the result is always what a build without the
// cache makes.
func TestEndpointMemo(t *testing.T) {
	const a, b = "a.default.svc.cluster.local", "b.default.svc.cluster.local"
	in := memoMesh()
	in.Hashes = NewHashCache()
	prev := Build(in, 1)
	same := func(s, p *Snapshot, host string) bool {
		x, y := s.Endpoints(host), p.Endpoints(host)
		return len(x) > 0 && len(x) == len(y) && &x[0] == &y[0]
	}
	check := func(what string, s *Snapshot, in *Inputs) {
		t.Helper()
		plain := *in
		plain.Hashes = nil
		want := Build(&plain, s.Version)
		for _, host := range []string{a, b} {
			if !reflect.DeepEqual(s.Endpoints(host), want.Endpoints(host)) || s.EndpointsHashOf(host) != want.EndpointsHashOf(host) {
				t.Errorf("%s: %s endpoints %+v, without the memo %+v", what, host, s.Endpoints(host), want.Endpoints(host))
			}
		}
	}

	// b's slice changes: a's endpoints are the last build's, b's are new.
	next := *in
	next.EndpointSlices = []*discoveryv1.EndpointSlice{in.EndpointSlices[0], in.EndpointSlices[1].DeepCopy()}
	next.EndpointSlices[1].Endpoints = next.EndpointSlices[1].Endpoints[:1]
	s := Build(&next, 2)
	if !same(s, prev, a) || same(s, prev, b) || len(s.Endpoints(b)) != 1 {
		t.Errorf("slice change: a reused %v (want true), b reused %v (want false), b has %d endpoints", same(s, prev, a), same(s, prev, b), len(s.Endpoints(b)))
	}
	check("slice change", s, &next)
	// a's hash was computed for the first snapshot (check asked it): the
	// second takes it from the memo entry it shares.
	if he := s.epHashes.memo; he != nil {
		t.Error("the memo is still held after the hashes were computed")
	}
	if h := in.Hashes.endpoints.hosts[a].hash.Load(); h == 0 || h != hashEndpoints(s.Endpoints(a)) {
		t.Errorf("a's memo entry holds hash %x, want %x", h, hashEndpoints(s.Endpoints(a)))
	}
	prev = s

	// A pod of a gets new labels (same slice): a is built again.
	pods := append([]*corev1.Pod(nil), next.Pods...)
	pods[0] = pods[0].DeepCopy()
	pods[0].Labels = map[string]string{"app": "a", "version": "v2"}
	next.Pods = pods
	s = Build(&next, 3)
	if same(s, prev, a) || !same(s, prev, b) || s.Endpoints(a)[0].Labels["version"] != "v2" {
		t.Errorf("pod change: a reused %v (want false), b reused %v (want true), a's first labels %v", same(s, prev, a), same(s, prev, b), s.Endpoints(a)[0].Labels)
	}
	check("pod change", s, &next)
	prev = s

	// The node moves to another zone: every locality is read again.
	node := next.Nodes[0].DeepCopy()
	node.Labels[LabelZone] = "z2"
	next.Nodes = []*corev1.Node{node}
	s = Build(&next, 4)
	if same(s, prev, a) || same(s, prev, b) || s.Endpoints(b)[0].Locality.Zone != "z2" {
		t.Errorf("node change: endpoints reused, or zone %+v", s.Endpoints(b)[0].Locality)
	}
	check("node change", s, &next)

	// Nothing changed: everything is reused, and one locality is one value.
	again := Build(&next, 5)
	if !same(again, s, a) || !same(again, s, b) || again.Endpoints(a)[0].Locality != again.Endpoints(b)[0].Locality {
		t.Error("unchanged inputs: endpoints not reused, or a locality split in two values")
	}

	// b's only endpoint stops being ready: b has none, as without the memo.
	notReady := next.EndpointSlices[1].DeepCopy()
	notReady.Endpoints[0].Conditions.Ready = ptr(false)
	gone := next
	gone.EndpointSlices = []*discoveryv1.EndpointSlice{next.EndpointSlices[0], notReady}
	check("no ready endpoint", Build(&gone, 10), &gone)
	if eps := Build(&gone, 11).Endpoints(b); eps != nil {
		t.Errorf("b without a ready endpoint has %+v", eps)
	}
}
