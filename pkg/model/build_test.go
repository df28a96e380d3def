package model

import (
	"fmt"
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func ptr[T any](v T) *T { return &v }

func service(name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Selector: map[string]string{"app": name}, Ports: ports}}
}

func TestBuildEndpointsFromSlicesAndPods(t *testing.T) {
	in := &Inputs{
		Services: []*corev1.Service{
			service("reviews", corev1.ServicePort{Name: "http", Port: 9080}),
			service("ratings", corev1.ServicePort{Name: "http", Port: 9080, TargetPort: intstr.FromString("web")}),
		},
		Pods: []*corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "reviews-v2", Namespace: "default", Labels: map[string]string{"app": "reviews", "version": "v2"}},
				Spec: corev1.PodSpec{ServiceAccountName: "sa-reviews"}, Status: corev1.PodStatus{PodIP: "10.1.0.5"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "ratings-v1", Namespace: "default", Labels: map[string]string{"app": "ratings"}},
				Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}}}}},
				Status: corev1.PodStatus{PodIP: "10.1.0.7"}},
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{{
			ObjectMeta:  metav1.ObjectMeta{Name: "reviews-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9080))}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.1.0.5"}}, // labels found by pod IP
				{Addresses: []string{"10.1.0.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
			},
		}},
	}
	s := Build(in, 1)
	eps := s.Endpoints("reviews.default.svc.cluster.local")
	if len(eps) != 1 || eps[0].Address != "10.1.0.5" || eps[0].Labels["version"] != "v2" || eps[0].ServiceAccount != "sa-reviews" {
		t.Fatalf("reviews endpoints = %+v", eps)
	}
	eps = s.Endpoints("ratings.default.svc.cluster.local")
	if len(eps) != 1 || eps[0].Ports["http"] != 8080 {
		t.Fatalf("ratings endpoints from pods (named targetPort) = %+v", eps)
	}
}

func TestBuildEndpointOnlyChangeKeepsConfigHash(t *testing.T) {
	in := &Inputs{Services: []*corev1.Service{service("a", corev1.ServicePort{Name: "http", Port: 80})}}
	s1 := Build(in, 1)
	in.EndpointSlices = []*discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default",
		Labels: map[string]string{discoveryv1.LabelServiceName: "a"}}, AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}}}
	s2 := Build(in, 2)
	if s1.ConfigHash != s2.ConfigHash || s1.EndpointsHash == s2.EndpointsHash {
		t.Fatalf("endpoint-only change: config %x→%x endpoints %x→%x", s1.ConfigHash, s2.ConfigHash, s1.EndpointsHash, s2.EndpointsHash)
	}
}

func TestBuildSkipsInvalidObjectsOneByOne(t *testing.T) {
	vs := func(name string, http ...*networkingapi.HTTPRoute) *networking.VirtualService {
		v := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		v.Spec.Hosts, v.Spec.Http = []string{"a"}, http
		return v
	}
	dest := func(host string, w int32) *networkingapi.HTTPRouteDestination {
		return &networkingapi.HTTPRouteDestination{Destination: &networkingapi.Destination{Host: host}, Weight: w}
	}
	in := &Inputs{
		Services: []*corev1.Service{service("a", corev1.ServicePort{Name: "http", Port: 80})},
		VirtualServices: []*networking.VirtualService{
			vs("bad-regex", &networkingapi.HTTPRoute{
				Match: []*networkingapi.HTTPMatchRequest{{Uri: &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: "("}}}},
				Route: []*networkingapi.HTTPRouteDestination{dest("a", 0)}}),
			vs("weights-90", &networkingapi.HTTPRoute{
				Route: []*networkingapi.HTTPRouteDestination{dest("a", 60), dest("a", 30)}}),
			vs("no-subset", &networkingapi.HTTPRoute{
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "a", Subset: "v1"}}}}),
			vs("good", &networkingapi.HTTPRoute{
				Route: []*networkingapi.HTTPRouteDestination{dest("a", 0)}}),
		},
	}
	s := Build(in, 1)
	var kept []string
	for _, v := range s.VirtualServices {
		kept = append(kept, v.Name)
	}
	if strings.Join(kept, ",") != "good,no-subset" {
		t.Errorf("kept %v, want good and no-subset (warning only)", kept)
	}
	want := map[string]string{
		"bad-regex":  "spec.http[0].match[0].uri.regex",
		"weights-90": "spec.http[0].route[*].weight",
		"no-subset":  "spec.http[0].route[0].destination.subset",
	}
	for _, e := range s.Errors {
		if f, ok := want[e.Name]; ok && f == e.Field {
			delete(want, e.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing errors naming object and field: %v; got %v", want, s.Errors)
	}
}

func TestFingerprintIgnoresWhatTheModelDoesNotRead(t *testing.T) {
	svc := service("a", corev1.ServicePort{Name: "http", Port: 80})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a-0", Namespace: "default", Labels: map[string]string{"app": "a"}},
		Status: corev1.PodStatus{PodIP: "10.0.0.1", Phase: corev1.PodRunning}}
	in := &Inputs{Services: []*corev1.Service{svc}, Pods: []*corev1.Pod{pod}}
	c1, e1 := fingerprint(in)

	svc2, pod2 := svc.DeepCopy(), pod.DeepCopy()
	svc2.ResourceVersion, pod2.ResourceVersion = "99", "100"
	svc2.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	pod2.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	c2, e2 := fingerprint(&Inputs{Services: []*corev1.Service{svc2}, Pods: []*corev1.Pod{pod2}})
	if c1 != c2 || e1 != e2 {
		t.Error("resourceVersion/status changes flipped a fingerprint")
	}

	pod3 := pod.DeepCopy()
	pod3.Labels = map[string]string{"app": "a", "version": "v2"}
	if c3, e3 := fingerprint(&Inputs{Services: []*corev1.Service{svc}, Pods: []*corev1.Pod{pod3}}); c3 != c1 || e3 == e1 {
		t.Error("a pod label change must be an endpoint-only change")
	}
	svc4 := svc.DeepCopy()
	svc4.Spec.Ports[0].Port = 81
	if c4, _ := fingerprint(&Inputs{Services: []*corev1.Service{svc4}, Pods: []*corev1.Pod{pod}}); c4 == c1 {
		t.Error("a service port change must change the config fingerprint")
	}
}

// The fingerprint cache: the same hashes as without it, a new resourceVersion
// is hashed again, an unchanged one is not.
func TestHashCacheFollowsResourceVersions(t *testing.T) {
	svc := service("a", corev1.ServicePort{Name: "http", Port: 80})
	svc.ResourceVersion = "1"
	in := &Inputs{Services: []*corev1.Service{svc}}
	plain := Build(in, 1)
	in.Hashes = NewHashCache()
	cached := Build(in, 2)
	if plain.ConfigHash != cached.ConfigHash || plain.EndpointsHash != cached.EndpointsHash {
		t.Fatal("the cache changes the fingerprint")
	}
	// Same resourceVersion: the cached hash stands (the apiserver never
	// changes an object without a new one).
	edited := svc.DeepCopy()
	edited.Spec.Ports[0].Port = 81
	in.Services = []*corev1.Service{edited}
	if Build(in, 3).ConfigHash != cached.ConfigHash {
		t.Error("an object with the same resourceVersion was hashed again")
	}
	edited.ResourceVersion = "2"
	if Build(in, 4).ConfigHash == cached.ConfigHash {
		t.Error("a new resourceVersion with another spec kept the old hash")
	}
	// Without a resourceVersion (file mode) nothing is cached.
	edited.ResourceVersion = ""
	edited.Spec.Ports[0].Port = 82
	a := Build(in, 5).ConfigHash
	edited.Spec.Ports[0].Port = 83
	if Build(in, 6).ConfigHash == a {
		t.Error("an object without resourceVersion was taken from the cache")
	}
}

// Objects the builds no longer read leave the cache's by-address index (it
// holds them alive while they are in it).
func TestHashCacheDropsObjectsNoLongerRead(t *testing.T) {
	in := &Inputs{Hashes: NewHashCache()}
	for i := range 200 {
		svc := service(fmt.Sprintf("s%d", i), corev1.ServicePort{Name: "http", Port: 80})
		svc.ResourceVersion = "1"
		in.Services = append(in.Services, svc)
	}
	want := Build(in, 1).ConfigHash
	for b := range 3 {
		for i, svc := range in.Services {
			in.Services[i] = svc.DeepCopy() // the informer's new object, same version
		}
		if got := Build(in, uint64(b+2)).ConfigHash; got != want {
			t.Fatalf("build %d: config hash changed with new copies of the same versions", b+2)
		}
	}
	if n := len(in.Hashes.byObject); n > 200+64 {
		t.Errorf("%d objects indexed by address after builds of 200 each: the replaced ones were kept", n)
	}
}
