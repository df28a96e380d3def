package xds

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	networkingapi "istio.io/api/networking/v1"
	networking "istio.io/client-go/pkg/apis/networking/v1"

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

// benchMeshRouted is benchMesh with the routing of the Kubernetes benchmark:
// every 10th service has a DestinationRule (subsets v1, v2) and a
// VirtualService (90/10), and the first ten of those a first route for the
// calls of one workload (sourceLabels).
func benchMeshRouted(n, proxies int, extra string) *model.Inputs {
	in := benchMesh(n, proxies, extra)
	for i := 0; i < n; i += 10 {
		name := fmt.Sprintf("svc-%d", i)
		host := name + ".default.svc.cluster.local"
		in.DestinationRules = append(in.DestinationRules, &networking.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1", UID: types.UID("dr-" + name)},
			Spec: networkingapi.DestinationRule{Host: host, Subsets: []*networkingapi.Subset{
				{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}},
		})
		dest := func(subset string, w int32) *networkingapi.HTTPRouteDestination {
			return &networkingapi.HTTPRouteDestination{Weight: w, Destination: &networkingapi.Destination{Host: host, Subset: subset}}
		}
		vs := &networking.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1", UID: types.UID("vs-" + name)},
			Spec: networkingapi.VirtualService{Hosts: []string{host}, Http: []*networkingapi.HTTPRoute{
				{Route: []*networkingapi.HTTPRouteDestination{dest("v1", 90), dest("v2", 10)}}}},
		}
		if k := i / 10; k >= 1 && k <= 10 {
			vs.Spec.Http = append([]*networkingapi.HTTPRoute{{
				Match: []*networkingapi.HTTPMatchRequest{{SourceLabels: map[string]string{"app": fmt.Sprintf("w%d", k)}}},
				Route: []*networkingapi.HTTPRouteDestination{dest("v2", 100)},
			}}, vs.Spec.Http...)
		}
		in.VirtualServices = append(in.VirtualServices, vs)
	}
	return in
}

// BenchmarkEndpointChangeBuild is the per-proxy build of an endpoint-only
// push: 1,000 services × 5 endpoints, 1,000 distinct workloads; one op builds
// every proxy's sets from a generation whose only change is one endpoint.
func BenchmarkEndpointChangeBuild(b *testing.B) {
	const n, proxies = 1000, 1000
	prev, err := newGeneration(model.Build(benchMeshRouted(n, proxies, ""), 1), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ps := make([]*model.Proxy, proxies)
	inbound := make([]*inboundParts, proxies)
	sets := make([][numTypes]*resourceSet, proxies) // what each proxy holds, as in a push
	for i := range ps {
		ps[i] = workload(i)
		if sets[i], inbound[i], err = prev.build(ps[i], nil, sets[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		snap := model.Build(benchMeshRouted(n, proxies, togglingEndpoint(i)), uint64(i+2))
		b.StartTimer()
		g, err := newGeneration(snap, prev, nil)
		if err != nil {
			b.Fatal(err)
		}
		for j, p := range ps {
			if sets[j], inbound[j], err = g.build(p, inbound[j], sets[j]); err != nil {
				b.Fatal(err)
			}
		}
		prev = g
	}
}

// BenchmarkEndpointChangeModel is the model side of the same change, as the
// Kubernetes source runs it: model.Build with a HashCache, every object
// versioned by the apiserver and the same object while its version is, one
// EndpointSlice at a new resourceVersion.
func BenchmarkEndpointChangeModel(b *testing.B) {
	const n, proxies = 1000, 1000
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
		return in
	}
	base := versioned(benchMeshRouted(n, proxies, ""), "1")
	base.Hashes = model.NewHashCache()
	// svc-0's slice as the apiserver serves it after each round's write.
	var variants [2]*discoveryv1.EndpointSlice
	for i := range variants {
		variants[i] = versioned(benchMesh(1, 1, togglingEndpoint(i)), fmt.Sprint(i+2)).EndpointSlices[0]
	}
	model.Build(base, 1)
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		in := *base
		in.EndpointSlices = slices.Clone(base.EndpointSlices)
		in.EndpointSlices[0] = variants[i%2]
		b.StartTimer()
		model.Build(&in, uint64(i+2))
	}
}

// togglingEndpoint is the extra endpoint of svc-0 in round i: there, then gone.
func togglingEndpoint(i int) string {
	if i%2 == 1 {
		return ""
	}
	return "10.201.0.1"
}

// vsBenchMesh is benchMesh with the kube bench's routing: every 10th service
// has a DestinationRule (v1/v2) and a 90/10 VirtualService, and the
// VirtualServices of svc-10k (k = 1..10) send the calls of workload w<k> to v2
// (sourceLabels). weight is svc-0's v1 weight: the change a round makes.
func vsBenchMesh(n, proxies, weight int) *model.Inputs {
	in := benchMesh(n, proxies, "")
	for i := 0; i < n; i += 10 {
		host := fmt.Sprintf("svc-%d.default.svc.cluster.local", i)
		dr := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: "default"}}
		dr.Spec.Host = host
		dr.Spec.Subsets = []*networkingapi.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}
		vs := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: "default", CreationTimestamp: metav1.Unix(int64(i), 0)}}
		vs.Spec.Hosts = []string{host}
		w := int32(90)
		if i == 0 {
			w = int32(weight)
		}
		split := &networkingapi.HTTPRoute{Route: []*networkingapi.HTTPRouteDestination{
			{Destination: &networkingapi.Destination{Host: host, Subset: "v1"}, Weight: w},
			{Destination: &networkingapi.Destination{Host: host, Subset: "v2"}, Weight: 100 - w}}}
		if k := i / 10; k >= 1 && k <= 10 {
			vs.Spec.Http = append(vs.Spec.Http, &networkingapi.HTTPRoute{
				Match: []*networkingapi.HTTPMatchRequest{{SourceLabels: map[string]string{"app": fmt.Sprintf("w%d", k)}}},
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: host, Subset: "v2"}}}})
		}
		vs.Spec.Http = append(vs.Spec.Http, split)
		in.DestinationRules = append(in.DestinationRules, dr)
		in.VirtualServices = append(in.VirtualServices, vs)
	}
	return in
}

// benchProxyIn is workload(i) moved to one of 5 namespaces (the kube bench's
// spread): their short-name domains differ from default's.
func benchProxyIn(i int) *model.Proxy {
	p := workload(i)
	if k := i % 5; k > 0 {
		p.Namespace = fmt.Sprintf("ns-%d", k)
	}
	return p
}

// BenchmarkVirtualServiceChangeBuild is the per-proxy build of a
// VirtualService change (svc-0's split 90/10 ↔ 80/20) for 1,000 distinct
// workloads in 5 namespaces, 10 of them selected by sourceLabels: every
// route table is rebuilt, as many as the proxies' distinct keys.
func BenchmarkVirtualServiceChangeBuild(b *testing.B) {
	const n, proxies = 1000, 1000
	prev, err := newGeneration(model.Build(vsBenchMesh(n, proxies, 90), 1), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ps := make([]*model.Proxy, proxies)
	inbound := make([]*inboundParts, proxies)
	sets := make([][numTypes]*resourceSet, proxies)
	for i := range ps {
		ps[i] = benchProxyIn(i)
		if sets[i], inbound[i], err = prev.build(ps[i], nil, sets[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		snap := model.Build(vsBenchMesh(n, proxies, 80+10*(i%2)), uint64(i+2))
		b.StartTimer()
		g, err := newGeneration(snap, prev, nil)
		if err != nil {
			b.Fatal(err)
		}
		for j, p := range ps {
			if sets[j], inbound[j], err = g.build(p, inbound[j], sets[j]); err != nil {
				b.Fatal(err)
			}
		}
		prev = g
	}
}
