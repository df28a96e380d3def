package model

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// changeMesh is a mesh with every kind of service an endpoint change can
// meet: plain ones with slices (svc-0..5), a headless one, one whose
// endpoints come from its pods (no slice), an ExternalName alias, a
// ServiceEntry, pods on nodes of two zones, a DestinationRule with
// outlierDetection (endpoints by locality) and a slice of no service.
func changeMesh() *Inputs {
	in := &Inputs{}
	rv := func(m *metav1.ObjectMeta) { m.ResourceVersion, m.UID = "1", types.UID("uid-"+m.Namespace+"-"+m.Name) }
	for z := range 2 {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", z), Labels: map[string]string{LabelRegion: "r", LabelZone: fmt.Sprintf("z%d", z)}}}
		rv(&n.ObjectMeta)
		in.Nodes = append(in.Nodes, n)
	}
	for i := range 8 {
		name := fmt.Sprintf("svc-%d", i)
		svc := service(name, corev1.ServicePort{Name: "http", Port: 80})
		svc.Spec.ClusterIP = fmt.Sprintf("10.96.0.%d", i+1)
		if i == 6 {
			svc.Spec.ClusterIP = corev1.ClusterIPNone
		}
		rv(&svc.ObjectMeta)
		in.Services = append(in.Services, svc)
		for p := range 3 {
			sa := "sa" // svc-5's second pod runs as another: its endpoints may change identities
			if i == 5 && p == 1 {
				sa = "sa-other"
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, p), Namespace: "default", Labels: map[string]string{"app": name, "version": fmt.Sprintf("v%d", p%2)}},
				Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: fmt.Sprintf("n%d", p%2)}, Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.1.%d.%d", i, p+1)}}
			rv(&pod.ObjectMeta)
			in.Pods = append(in.Pods, pod)
		}
		if i == 7 {
			continue // svc-7: endpoints from its pods
		}
		in.EndpointSlices = append(in.EndpointSlices, changeSlice(name, i, "1", []int{1, 2}, nil))
	}
	in.EndpointSlices = append(in.EndpointSlices, changeSlice("nosvc", 9, "1", []int{1}, nil))
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	rv(&ext.ObjectMeta)
	in.Services = append(in.Services, ext)
	se := &networking.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "se", Namespace: "default"}}
	se.Spec.Hosts = []string{"api.example.com"}
	se.Spec.Resolution = networkingapi.ServiceEntry_STATIC
	se.Spec.Ports = []*networkingapi.ServicePort{{Number: 443, Name: "tls", Protocol: "TLS"}}
	se.Spec.Endpoints = []*networkingapi.WorkloadEntry{{Address: "192.0.2.1"}}
	rv(&se.ObjectMeta)
	in.ServiceEntries = []*networking.ServiceEntry{se}
	dr := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "od", Namespace: "default"}}
	dr.Spec.Host = "svc-0.default.svc.cluster.local"
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{OutlierDetection: &networkingapi.OutlierDetection{}}
	rv(&dr.ObjectMeta)
	in.DestinationRules = []*networking.DestinationRule{dr}
	gw := &networking.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "ingress", Namespace: "default"}}
	gw.Spec.Selector = map[string]string{"istio": "ingressgateway"}
	gw.Spec.Servers = []*networkingapi.Server{{Port: &networkingapi.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}}
	rv(&gw.ObjectMeta)
	in.Gateways = []*networking.Gateway{gw}
	return in
}

// changeSlice is service name's (index i) slice at resourceVersion rv with
// the endpoints of its pods ps (10.1.i.p), on their nodes; bad adds an
// address that does not parse.
func changeSlice(name string, i int, rv string, ps []int, bad []string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-abc", Namespace: "default", ResourceVersion: rv, UID: types.UID("uid-es-" + name), Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
	}
	for _, p := range ps {
		pod := fmt.Sprintf("%s-%d", name, p-1)
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.1.%d.%d", i, p)},
			NodeName: ptr(fmt.Sprintf("n%d", (p-1)%2)), TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod}})
	}
	for _, a := range bad {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return es
}

// How a change is expected to be built.
type expect int

const (
	full  expect = iota // the full build: the change reaches beyond endpoints
	may                 // either, depending on what it meets
	short               // from the last snapshot (as a rule: see the test)
)

// A build that starts from the last snapshot for an endpoint change makes
// exactly what a full build makes, whatever the change; and it does start
// from it for the changes it can take.
func TestEndpointChangeBuildEqualsFullBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	in := changeMesh()
	in.Hashes = NewHashCache()
	prev := Build(in, 1)
	version := uint64(1)
	took := map[expect]int{}
	total := map[expect]int{}
	for step := range 600 {
		next := *in
		next.EndpointSlices = slices.Clone(in.EndpointSlices)
		what, want := changeStep(rng, &next, step)
		// A malformed slice makes the next build a full one (checkAddresses).
		if want == short && slices.ContainsFunc(in.EndpointSlices, func(es *discoveryv1.EndpointSlice) bool { return !sliceAddressesValid(es) }) {
			want = may
		}
		version++
		s := Build(&next, version)
		plain := next
		plain.Hashes = nil
		ref := Build(&plain, version)
		if diff := snapshotDiff(s, ref); diff != "" {
			t.Fatalf("step %d (%s): the build with the last snapshot differs from a full build: %s", step, what, diff)
		}
		fast := reflect.ValueOf(s.services).UnsafePointer() == reflect.ValueOf(prev.services).UnsafePointer()
		if fast && want == full {
			t.Fatalf("step %d (%s): started from the last snapshot, want a full build", step, what)
		}
		total[want]++
		if fast {
			took[want]++
		}
		in, prev = &next, s
	}
	// The changes it gives up on (headless, identities, gateway pods, …) are
	// drawn on purpose; most plain ones must take the short way (svc-5's may
	// change its identities).
	t.Logf("from the last snapshot: %d of %d plain changes, %d of %d others that may", took[short], total[short], took[may], total[may])
	if took[short] < total[short]*8/10 || took[may] == 0 {
		t.Errorf("from the last snapshot: %d of %d plain changes, %d of %d others that may", took[short], total[short], took[may], total[may])
	}
}

// changeStep changes in as a cluster might, and says how it expects the
// change to be built.
func changeStep(rng *rand.Rand, in *Inputs, step int) (string, expect) {
	rv := fmt.Sprint(step + 2)
	switch k := rng.IntN(24); {
	case k < 10: // a plain service's endpoints come and go
		i := rng.IntN(6)
		ps := []int{1 + rng.IntN(3)}
		for p := 1; p <= 3; p++ {
			if rng.IntN(2) == 0 && p != ps[0] {
				ps = append(ps, p)
			}
		}
		slices.Sort(ps)
		in.EndpointSlices[i] = changeSlice(fmt.Sprintf("svc-%d", i), i, rv, ps, nil)
		return fmt.Sprintf("svc-%d endpoints %v", i, ps), short
	case k < 13: // a pod of a plain service restarts: new object, new address, and its slice
		i, p := rng.IntN(5), rng.IntN(3)
		pods := slices.Clone(in.Pods)
		j := podNamed(pods, fmt.Sprintf("svc-%d-%d", i, p))
		pod := pods[j].DeepCopy()
		pod.ResourceVersion, pod.Status.PodIP = rv, fmt.Sprintf("10.1.%d.%d", i, 10+step%200)
		pods[j] = pod
		in.Pods = pods
		es := changeSlice(fmt.Sprintf("svc-%d", i), i, rv, []int{1, 2, 3}, nil)
		es.Endpoints[p].Addresses = []string{pod.Status.PodIP}
		in.EndpointSlices[i] = es
		return fmt.Sprintf("pod %s restarts at %s", pod.Name, pod.Status.PodIP), short
	case k == 13: // a pod of a plain service is relabelled, its slice unchanged
		i, p := rng.IntN(5), rng.IntN(3)
		pods := slices.Clone(in.Pods)
		j := podNamed(pods, fmt.Sprintf("svc-%d-%d", i, p))
		pods[j] = pods[j].DeepCopy()
		pods[j].ResourceVersion = rv
		pods[j].Labels = map[string]string{"app": fmt.Sprintf("svc-%d", i), "version": "v" + rv}
		in.Pods = pods
		return "pod " + pods[j].Name + " relabelled", short
	case k == 14: // a gateway pod comes or goes: the gateway checks read pods
		if j := podNamed(in.Pods, "ingress"); j >= 0 {
			in.Pods = slices.Delete(slices.Clone(in.Pods), j, j+1)
			return "gateway pod gone", full
		}
		gw := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ingress", Namespace: "default", ResourceVersion: rv, Labels: map[string]string{"istio": "ingressgateway"}},
			Status: corev1.PodStatus{PodIP: "10.9.0.1"}}
		in.Pods = append(slices.Clone(in.Pods), gw)
		return "gateway pod", full
	case k == 15: // a second slice for a service, or it goes
		if j := sliceNamed(in, "svc-1-xyz"); j >= 0 {
			in.EndpointSlices = slices.Delete(in.EndpointSlices, j, j+1)
			return "second slice of svc-1 gone", short
		}
		es := changeSlice("svc-1", 1, rv, []int{3}, nil)
		es.Name = "svc-1-xyz"
		in.EndpointSlices = append(in.EndpointSlices, es)
		return "second slice of svc-1", short
	case k == 16: // a malformed address
		i := rng.IntN(6)
		in.EndpointSlices[i] = changeSlice(fmt.Sprintf("svc-%d", i), i, rv, []int{1}, []string{"10.1.300.1"})
		return fmt.Sprintf("svc-%d with a bad address", i), full
	case k == 17: // the headless service's endpoints
		in.EndpointSlices[6] = changeSlice("svc-6", 6, rv, []int{1 + rng.IntN(3)}, nil)
		return "headless svc-6", full
	case k == 18: // the slice of no service
		in.EndpointSlices[7] = changeSlice("nosvc", 9, rv, []int{1 + rng.IntN(3)}, nil)
		return "slice of no service", short
	case k == 19: // svc-7 gets a slice, or loses it: pods no longer count
		if j := sliceNamed(in, "svc-7-abc"); j >= 0 {
			in.EndpointSlices = slices.Delete(in.EndpointSlices, j, j+1)
			return "svc-7 back to its pods", full
		}
		in.EndpointSlices = append(in.EndpointSlices, changeSlice("svc-7", 7, rv, []int{1}, nil))
		return "svc-7 gets a slice", full
	case k == 20: // a pod of svc-7 is relabelled: full while svc-7's endpoints are its pods
		pods := slices.Clone(in.Pods)
		j := podNamed(pods, fmt.Sprintf("svc-7-%d", rng.IntN(3)))
		pods[j] = pods[j].DeepCopy()
		pods[j].ResourceVersion = rv
		pods[j].Labels = map[string]string{"app": "svc-7", "version": "v" + rv}
		in.Pods = pods
		return "pod " + pods[j].Name + " relabelled", may
	case k == 21: // a node moves to another zone
		nodes := slices.Clone(in.Nodes)
		nodes[0] = nodes[0].DeepCopy()
		nodes[0].ResourceVersion = rv
		nodes[0].Labels[LabelZone] = "z" + rv
		in.Nodes = nodes
		return "node n0 moves", full
	case k == 22: // svc-5's pods run as another service account: new identities
		pods := slices.Clone(in.Pods)
		j := podNamed(pods, fmt.Sprintf("svc-5-%d", rng.IntN(3)))
		pods[j] = pods[j].DeepCopy()
		pods[j].ResourceVersion = rv
		pods[j].Spec.ServiceAccountName = "sa-" + rv
		in.Pods = pods
		return "pod " + pods[j].Name + " runs as sa-" + rv, may // full while its address is an endpoint
	default: // the same object changed in place, with a new resourceVersion
		svc := in.Services[rng.IntN(6)]
		svc.ResourceVersion = rv
		svc.Spec.Ports[0].Port = int32(80 + step%5)
		return svc.Name + " changed in place", full
	}
}

func podNamed(pods []*corev1.Pod, name string) int {
	return slices.IndexFunc(pods, func(p *corev1.Pod) bool { return p.Name == name })
}

func sliceNamed(in *Inputs, name string) int {
	return slices.IndexFunc(in.EndpointSlices, func(es *discoveryv1.EndpointSlice) bool { return es.Name == name })
}

// snapshotDiff compares two builds of the same inputs: every field, with
// what is derived lazily or only memoizes compared by its results.
func snapshotDiff(a, b *Snapshot) string {
	norm := func(s *Snapshot) Snapshot {
		c := *s
		c.Inputs, c.drViewKeys, c.byIP, c.epHashes = nil, nil, nil, nil
		if s.localities != nil {
			l := *s.localities
			l.shared = nil
			c.localities = &l
		}
		c.Errors = slices.Clone(s.Errors)
		slices.SortFunc(c.Errors, func(x, y ConfigError) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) })
		return c
	}
	na, nb := norm(a), norm(b)
	if !reflect.DeepEqual(na, nb) {
		va, vb := reflect.ValueOf(&na).Elem(), reflect.ValueOf(&nb).Elem()
		field := func(v reflect.Value, i int) any {
			f := v.Field(i)
			return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
		}
		for i := range va.NumField() {
			if x, y := field(va, i), field(vb, i); !reflect.DeepEqual(x, y) {
				return fmt.Sprintf("field %s: %+v, full build %+v", va.Type().Field(i).Name, x, y)
			}
		}
		return "differs"
	}
	for h := range b.endpoints {
		if a.EndpointsHashOf(h) != b.EndpointsHashOf(h) {
			return "EndpointsHashOf " + h
		}
		for _, ep := range b.endpoints[h] {
			if !reflect.DeepEqual(a.InstancesAt(ep.Address), b.InstancesAt(ep.Address)) {
				return "InstancesAt " + ep.Address
			}
		}
	}
	return ""
}

// Every kind of input is compared and copied: a field added to Inputs must
// be added to sameButEndpoints (or be compared object by object, as slices
// and pods are) and cloneInputs too.
func TestSameButSlicesCoversEveryInput(t *testing.T) {
	c := NewHashCache()
	typ := reflect.TypeFor[Inputs]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.Slice {
			continue
		}
		var a Inputs
		fa := reflect.ValueOf(&a).Elem().Field(i)
		elem := reflect.New(f.Type.Elem().Elem())
		fa.Set(reflect.Append(fa, elem))
		b := cloneInputs(&a)
		fb := reflect.ValueOf(&b).Elem().Field(i)
		if fb.Len() != 1 || fb.Index(0).Interface() != elem.Interface() || fb.UnsafePointer() == fa.UnsafePointer() {
			t.Errorf("cloneInputs does not copy %s", f.Name)
		}
		if f.Name == "EndpointSlices" || f.Name == "Pods" {
			continue // compared object by object (buildEndpointChange, diffPods)
		}
		fb.Index(0).Set(reflect.New(f.Type.Elem().Elem()))
		if sameButEndpoints(c, &a, &b) {
			t.Errorf("sameButEndpoints does not compare %s", f.Name)
		}
	}
}
