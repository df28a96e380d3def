package model

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

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

// A build that starts from the last snapshot for an endpoint change makes
// exactly what a full build makes, whatever the change; and it does start
// from it for the changes it can take.
func TestEndpointChangeBuildEqualsFullBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	in := changeMesh()
	in.Hashes = NewHashCache()
	prev := Build(in, 1)
	version, fast, fastWanted := uint64(1), 0, 0
	for step := range 400 {
		next := *in
		next.EndpointSlices = slices.Clone(in.EndpointSlices)
		what, wantFast := changeStep(rng, &next, step)
		// A malformed slice makes the next build a full one (checkAddresses).
		wantFast = wantFast && !slices.ContainsFunc(in.EndpointSlices, func(es *discoveryv1.EndpointSlice) bool { return !sliceAddressesValid(es) })
		version++
		s := Build(&next, version)
		plain := next
		plain.Hashes = nil
		want := Build(&plain, version)
		if diff := snapshotDiff(s, want); diff != "" {
			t.Fatalf("step %d (%s): the build with the last snapshot differs from a full build: %s", step, what, diff)
		}
		took := reflect.ValueOf(s.services).UnsafePointer() == reflect.ValueOf(prev.services).UnsafePointer()
		if took && !wantFast {
			t.Fatalf("step %d (%s): started from the last snapshot, want a full build", step, what)
		}
		if wantFast {
			fastWanted++
			if took {
				fast++
			}
		}
		in, prev = &next, s
	}
	// The changes it gives up on (headless, identities, pods, …) are drawn
	// on purpose; most plain ones must take the short way (svc-5's may
	// change its identities).
	t.Logf("%d of %d plain endpoint changes started from the last snapshot", fast, fastWanted)
	if fast < fastWanted*8/10 {
		t.Errorf("%d of %d plain endpoint changes started from the last snapshot", fast, fastWanted)
	}
}

// changeStep changes in as a cluster might, and says whether only plain
// services' slices changed (the short way may be taken; it still gives up
// when identities or localities change).
func changeStep(rng *rand.Rand, in *Inputs, step int) (string, bool) {
	rv := fmt.Sprint(step + 2)
	switch k := rng.IntN(20); {
	case k < 12: // a plain service's endpoints come and go
		i := rng.IntN(6)
		ps := []int{1 + rng.IntN(3)}
		for p := 1; p <= 3; p++ {
			if rng.IntN(2) == 0 && p != ps[0] {
				ps = append(ps, p)
			}
		}
		slices.Sort(ps)
		in.EndpointSlices[i] = changeSlice(fmt.Sprintf("svc-%d", i), i, rv, ps, nil)
		return fmt.Sprintf("svc-%d endpoints %v", i, ps), true
	case k == 12: // a second slice for a service, or it goes
		if j := sliceNamed(in, "svc-1-xyz"); j >= 0 {
			in.EndpointSlices = slices.Delete(in.EndpointSlices, j, j+1)
			return "second slice of svc-1 gone", true
		}
		es := changeSlice("svc-1", 1, rv, []int{3}, nil)
		es.Name = "svc-1-xyz"
		in.EndpointSlices = append(in.EndpointSlices, es)
		return "second slice of svc-1", true
	case k == 13: // a malformed address
		i := rng.IntN(6)
		in.EndpointSlices[i] = changeSlice(fmt.Sprintf("svc-%d", i), i, rv, []int{1}, []string{"10.1.300.1"})
		return fmt.Sprintf("svc-%d with a bad address", i), false
	case k == 14: // the headless service's endpoints
		in.EndpointSlices[6] = changeSlice("svc-6", 6, rv, []int{1 + rng.IntN(3)}, nil)
		return "headless svc-6", false
	case k == 15: // the slice of no service
		in.EndpointSlices[7] = changeSlice("nosvc", 9, rv, []int{1 + rng.IntN(3)}, nil)
		return "slice of no service", true
	case k == 16: // svc-7 gets a slice, or loses it: pods no longer count
		if j := sliceNamed(in, "svc-7-abc"); j >= 0 {
			in.EndpointSlices = slices.Delete(in.EndpointSlices, j, j+1)
			return "svc-7 back to its pods", false
		}
		in.EndpointSlices = append(in.EndpointSlices, changeSlice("svc-7", 7, rv, []int{1}, nil))
		return "svc-7 gets a slice", false
	case k == 17: // a pod of a service is relabelled: not an endpoint-only input change
		pods := slices.Clone(in.Pods)
		p := rng.IntN(len(pods))
		pods[p] = pods[p].DeepCopy()
		pods[p].ResourceVersion = rv
		pods[p].Labels = map[string]string{"app": strings.TrimSuffix(pods[p].Name[:5], "-"), "version": "v" + rv}
		in.Pods = pods
		return "pod " + pods[p].Name + " relabelled", false
	case k == 18: // a node moves to another zone
		nodes := slices.Clone(in.Nodes)
		nodes[0] = nodes[0].DeepCopy()
		nodes[0].ResourceVersion = rv
		nodes[0].Labels[LabelZone] = "z" + rv
		in.Nodes = nodes
		return "node n0 moves", false
	default: // the same object changed in place, with a new resourceVersion
		svc := in.Services[rng.IntN(6)]
		svc.ResourceVersion = rv
		svc.Spec.Ports[0].Port = int32(80 + step%5)
		return svc.Name + " changed in place", false
	}
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
		va, vb := reflect.ValueOf(na), reflect.ValueOf(nb)
		for i := range va.NumField() {
			if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
				return fmt.Sprintf("field %s: %+v, full build %+v", va.Type().Field(i).Name, va.Field(i), vb.Field(i))
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
// be added to sameButSlices and cloneInputs too.
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
		if f.Name == "EndpointSlices" {
			continue
		}
		fb.Index(0).Set(reflect.New(f.Type.Elem().Elem()))
		if sameButSlices(c, &a, &b) {
			t.Errorf("sameButSlices does not compare %s", f.Name)
		}
	}
}
