package xds

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// benchMesh is n HTTP services with 5 endpoints each, and one pod per proxy
// (the proxies' own workloads, w<i>, each behind a service of its own).
func benchMesh(n, proxies int, extra string) *model.Inputs {
	in := &model.Inputs{}
	ptr := func(s string) *string { return &s }
	port := func(p int32) *int32 { return &p }
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%d", i)
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1),
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
		})
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: port(8080)}},
		}
		for e := 0; e < 5; e++ {
			addr := fmt.Sprintf("10.200.%d.%d", i/50, (i%50)*5+e+1)
			if e == 0 && i < proxies {
				addr = workload(i).IP // the proxy's own workload serves svc-i
			}
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr}})
		}
		if i == 0 && extra != "" {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{extra}})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	for i := 0; i < proxies; i++ {
		p := workload(i)
		in.Pods = append(in.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.PodName, Namespace: "default", Labels: p.Labels},
			Status:     corev1.PodStatus{PodIP: p.IP},
		})
	}
	return in
}

// BenchmarkEndpointChangeBuild is the per-proxy build of an endpoint-only
// push: 1,000 services × 5 endpoints, 1,000 distinct workloads; one op builds
// every proxy's sets from a generation whose only change is one endpoint.
func BenchmarkEndpointChangeBuild(b *testing.B) {
	const n, proxies = 1000, 1000
	prev, err := newGeneration(model.Build(benchMesh(n, proxies, ""), 1), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ps := make([]*model.Proxy, proxies)
	inbound := make([]*inboundParts, proxies)
	for i := range ps {
		ps[i] = workload(i)
		if _, inbound[i], err = prev.build(ps[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		snap := model.Build(benchMesh(n, proxies, togglingEndpoint(i)), uint64(i+2))
		b.StartTimer()
		g, err := newGeneration(snap, prev, nil)
		if err != nil {
			b.Fatal(err)
		}
		for j, p := range ps {
			if _, inbound[j], err = g.build(p, inbound[j]); err != nil {
				b.Fatal(err)
			}
		}
		prev = g
	}
}

// BenchmarkEndpointChangeModel is the model side of the same change, as the
// Kubernetes source runs it: model.Build with a HashCache, every object
// versioned by the apiserver, one EndpointSlice at a new resourceVersion.
func BenchmarkEndpointChangeModel(b *testing.B) {
	const n, proxies = 1000, 1000
	hashes := model.NewHashCache()
	versioned := func(in *model.Inputs, rv string) *model.Inputs {
		for _, o := range in.Services {
			o.ResourceVersion, o.UID = "1", types.UID(o.Name)
		}
		for _, o := range in.Pods {
			o.ResourceVersion, o.UID = "1", types.UID(o.Name)
		}
		for _, o := range in.EndpointSlices {
			o.ResourceVersion, o.UID = "1", types.UID(o.Name)
		}
		in.EndpointSlices[0].ResourceVersion = rv
		in.Hashes = hashes
		return in
	}
	model.Build(versioned(benchMesh(n, proxies, ""), "1"), 1)
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		in := versioned(benchMesh(n, proxies, togglingEndpoint(i)), fmt.Sprint(i+2))
		b.StartTimer()
		model.Build(in, uint64(i+2))
	}
}

// togglingEndpoint is the extra endpoint of svc-0 in round i: there, then gone.
func togglingEndpoint(i int) string {
	if i%2 == 1 {
		return ""
	}
	return "10.201.0.1"
}
