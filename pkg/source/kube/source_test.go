package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

const wait = 5 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// istioGVRs are the resources the fake dynamic client knows, in the versions
// the tests serve.
func istioGVRs() map[schema.GroupVersionResource]string {
	m := map[schema.GroupVersionResource]string{}
	for _, k := range istioKinds() {
		for _, v := range []string{"v1", "v1beta1", "v1alpha3"} {
			m[schema.GroupVersionResource{Group: k.group, Version: v, Resource: k.resource}] = k.kind + "List"
		}
	}
	return m
}

// servedResources is what discovery answers when every Istio kind is served
// in the given versions.
func servedResources(versions ...string) []*metav1.APIResourceList {
	var out []*metav1.APIResourceList
	for _, group := range []string{"networking.istio.io", "security.istio.io"} {
		for _, v := range versions {
			rl := &metav1.APIResourceList{GroupVersion: group + "/" + v}
			for _, k := range istioKinds() {
				if k.group == group {
					rl.APIResources = append(rl.APIResources,
						metav1.APIResource{Name: k.resource, Kind: k.kind, Namespaced: true},
						metav1.APIResource{Name: k.resource + "/status", Kind: k.kind, Namespaced: true})
				}
			}
			out = append(out, rl)
		}
	}
	return out
}

type fakes struct {
	kube *kubefake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
}

func newFakes(kubeObjs []runtime.Object, istioObjs ...runtime.Object) fakes {
	kube := kubefake.NewClientset(kubeObjs...)
	kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = servedResources("v1", "v1beta1")
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), istioGVRs(), istioObjs...)
	return fakes{kube: kube, dyn: dyn}
}

// recorder collects what Run delivers.
type recorder struct {
	mu      sync.Mutex
	calls   []model.Inputs
	errs    []Error
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) onChange(in model.Inputs) {
	r.mu.Lock()
	r.calls = append(r.calls, in)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) onError(e Error) {
	r.mu.Lock()
	r.errs = append(r.errs, e)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *recorder) errors() []Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

func (r *recorder) last() (model.Inputs, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return model.Inputs{}, false
	}
	return r.calls[len(r.calls)-1], true
}

// waitFor waits until the latest inputs satisfy cond.
func (r *recorder) waitFor(t *testing.T, what string, cond func(model.Inputs) bool) model.Inputs {
	t.Helper()
	deadline := time.After(wait)
	for {
		if in, ok := r.last(); ok && cond(in) {
			return in
		}
		select {
		case <-r.changed:
		case <-deadline:
			in, _ := r.last()
			t.Fatalf("timed out waiting for %s; last inputs: %s", what, describe(in))
		}
	}
}

func describe(in model.Inputs) string {
	var parts []string
	add := func(kind string, names []string) {
		if len(names) > 0 {
			parts = append(parts, kind+"["+strings.Join(names, " ")+"]")
		}
	}
	add("ns", names(in.Namespaces))
	add("svc", names(in.Services))
	add("eps", names(in.EndpointSlices))
	add("pod", names(in.Pods))
	add("sa", names(in.ServiceAccounts))
	add("cm", names(in.ConfigMaps))
	add("vs", names(in.VirtualServices))
	add("dr", names(in.DestinationRules))
	add("gw", names(in.Gateways))
	add("pa", names(in.PeerAuthentications))
	return strings.Join(parts, " ")
}

func names[T metav1.Object](objs []T) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		if o.GetNamespace() != "" {
			out[i] = o.GetNamespace() + "/" + o.GetName()
		} else {
			out[i] = o.GetName()
		}
	}
	return out
}

func start(t *testing.T, f fakes, opts Options) (*Source, *recorder) {
	t.Helper()
	rec := newRecorder()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	opts.OnError = rec.onError
	s, err := NewForClients(f.kube, f.dyn, opts)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s, rec)
	return s, rec
}

func runSource(t *testing.T, s *Source, rec *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec.onChange) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return after cancel")
		}
	})
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func service(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.0.0.1", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Status: corev1.PodStatus{PodIP: "10.1.0.1"}}
}

func virtualService(ns, name, version string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/" + version,
		"kind":       "VirtualService",
		"metadata":   map[string]any{"namespace": ns, "name": name},
		"spec":       spec,
	}}
	return u
}

func vsSpec(host string, weight any) map[string]any {
	if w, ok := weight.(int); ok {
		weight = int64(w) // unstructured content holds JSON values only
	}
	return map[string]any{
		"hosts": []any{host},
		"http": []any{map[string]any{
			"route": []any{map[string]any{
				"destination": map[string]any{"host": host},
				"weight":      weight,
			}},
		}},
	}
}

var (
	vsGVR  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	paGVR  = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	ctxBG  = context.Background()
	create = metav1.CreateOptions{}
	update = metav1.UpdateOptions{}
	del    = metav1.DeleteOptions{}
)

func TestInitialSyncDeliversEverythingSorted(t *testing.T) {
	mesh := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio"},
		Data: map[string]string{"mesh": "trustDomain: example.org\n"}}
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "other"}}
	f := newFakes([]runtime.Object{
		namespace("b", nil), namespace("a", nil), namespace("istio-system", nil),
		service("b", "reviews"), service("a", "ratings"), service("a", "details"),
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "details-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "details"}}, AddressType: discoveryv1.AddressTypeIPv4},
		pod("a", "details-v1"),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "bookinfo-details"}},
		mesh, other,
	},
		virtualService("b", "reviews", "v1", vsSpec("reviews", 100)),
		virtualService("a", "details", "v1", vsSpec("details", 100)),
		&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
			"metadata": map[string]any{"namespace": "istio-system", "name": "default"},
			"spec":     map[string]any{"mtls": map[string]any{"mode": "STRICT"}},
		}},
	)
	s, rec := start(t, f, Options{})
	in := rec.waitFor(t, "initial inputs", func(model.Inputs) bool { return true })
	if !s.Ready() {
		// Ready is set right after the first onChange returns.
		deadline := time.Now().Add(wait)
		for !s.Ready() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !s.Ready() {
			t.Fatal("not Ready after the first onChange")
		}
	}
	want := "ns[a b istio-system] svc[a/details a/ratings b/reviews] eps[a/details-1] pod[a/details-v1] " +
		"sa[a/bookinfo-details] cm[istio-system/istio] vs[a/details b/reviews] pa[istio-system/default]"
	if got := describe(in); got != want {
		t.Errorf("initial inputs:\n got  %s\n want %s", got, want)
	}
	if got := in.VirtualServices[0].Spec.GetHttp()[0].GetRoute()[0].GetWeight(); got != 100 {
		t.Errorf("decoded weight = %d, want 100", got)
	}
	if got := in.VirtualServices[0].APIVersion; got != "networking.istio.io/v1" {
		t.Errorf("apiVersion = %q", got)
	}
	if got := in.PeerAuthentications[0].Spec.GetMtls().GetMode().String(); got != "STRICT" {
		t.Errorf("PeerAuthentication mode = %s", got)
	}
	if n := len(rec.errors()); n != 0 {
		t.Errorf("unexpected errors: %v", rec.errors())
	}
}

func TestNotReadyBeforeSync(t *testing.T) {
	f := newFakes(nil)
	// Lists of pods hang until released: the caches cannot sync.
	release := make(chan struct{})
	f.kube.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	s, rec := start(t, f, Options{})
	time.Sleep(100 * time.Millisecond)
	if s.Ready() || rec.count() != 0 {
		t.Fatalf("Ready=%v with %d onChange calls before the pod cache synced", s.Ready(), rec.count())
	}
	close(release)
	rec.waitFor(t, "initial inputs", func(model.Inputs) bool { return true })
}

func TestAddUpdateDeleteReachOnChange(t *testing.T) {
	f := newFakes([]runtime.Object{namespace("a", nil)})
	_, rec := start(t, f, Options{})
	rec.waitFor(t, "initial inputs", func(in model.Inputs) bool { return len(in.Namespaces) == 1 })

	svcs := f.kube.CoreV1().Services("a")
	if _, err := svcs.Create(ctxBG, service("a", "reviews"), create); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "service added", func(in model.Inputs) bool { return len(in.Services) == 1 })

	upd := service("a", "reviews")
	upd.Spec.Ports[0].Port = 9080
	if _, err := svcs.Update(ctxBG, upd, update); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "service updated", func(in model.Inputs) bool {
		return len(in.Services) == 1 && in.Services[0].Spec.Ports[0].Port == 9080
	})

	vss := f.dyn.Resource(vsGVR).Namespace("a")
	if _, err := vss.Create(ctxBG, virtualService("a", "reviews", "v1", vsSpec("reviews", 100)), create); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "virtual service added", func(in model.Inputs) bool { return len(in.VirtualServices) == 1 })
	if _, err := vss.Update(ctxBG, virtualService("a", "reviews", "v1", vsSpec("reviews", 50)), update); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "virtual service updated", func(in model.Inputs) bool {
		return len(in.VirtualServices) == 1 && in.VirtualServices[0].Spec.GetHttp()[0].GetRoute()[0].GetWeight() == 50
	})

	if err := vss.Delete(ctxBG, "reviews", del); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "virtual service deleted", func(in model.Inputs) bool { return len(in.VirtualServices) == 0 })
	if err := svcs.Delete(ctxBG, "reviews", del); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "service deleted", func(in model.Inputs) bool { return len(in.Services) == 0 })
}

func TestBadObjectSkippedAloneWithItsField(t *testing.T) {
	bad := virtualService("a", "bad", "v1", vsSpec("reviews", 100))
	bad.Object["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)["route"].([]any)[0].(map[string]any)["wieght"] = int64(5)
	bad.SetResourceVersion("7")
	good := virtualService("a", "good", "v1", vsSpec("ratings", 100))
	good.SetResourceVersion("8")
	f := newFakes([]runtime.Object{namespace("a", nil)}, bad, good)
	_, rec := start(t, f, Options{})
	in := rec.waitFor(t, "initial inputs", func(model.Inputs) bool { return true })
	if got := names(in.VirtualServices); !slices.Equal(got, []string{"a/good"}) {
		t.Errorf("virtual services = %v, want only a/good", got)
	}
	errs := rec.errors()
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
	}
	want := Error{Kind: "VirtualService", Namespace: "a", Name: "bad", ResourceVersion: "7",
		Field: "spec.http[0].route[0].wieght", Reason: `unknown field "wieght" (did you mean "weight"?)`}
	if errs[0] != want {
		t.Errorf("error:\n got  %#v\n want %#v", errs[0], want)
	}
	if got, wantMsg := errs[0].Error(), `VirtualService a/bad: spec.http[0].route[0].wieght: unknown field "wieght" (did you mean "weight"?)`; got != wantMsg {
		t.Errorf("Error() = %s, want %s", got, wantMsg)
	}

	// Unrelated changes rebuild the inputs but do not report the same
	// (object, resourceVersion) again.
	if _, err := f.kube.CoreV1().Services("a").Create(ctxBG, service("a", "ratings"), create); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "service added", func(in model.Inputs) bool { return len(in.Services) == 1 })
	if n := len(rec.errors()); n != 1 {
		t.Errorf("error reported %d times for one resourceVersion", n)
	}

	// A new version that is still broken is reported again, for its own
	// field; a fixed version flows.
	vss := f.dyn.Resource(vsGVR).Namespace("a")
	bad2 := virtualService("a", "bad", "v1", vsSpec("reviews", "heavy"))
	bad2.SetResourceVersion("9")
	if _, err := vss.Update(ctxBG, bad2, update); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for len(rec.errors()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	errs = rec.errors()
	if len(errs) != 2 || errs[1].Field != "spec.http[0].route[0].weight" || errs[1].ResourceVersion != "9" {
		t.Fatalf("errors after update: %v", errs)
	}
	fixed := virtualService("a", "bad", "v1", vsSpec("reviews", 100))
	fixed.SetResourceVersion("10")
	if _, err := vss.Update(ctxBG, fixed, update); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "fixed object flows", func(in model.Inputs) bool { return len(in.VirtualServices) == 2 })
	if n := len(rec.errors()); n != 2 {
		t.Errorf("got %d errors after the fix, want 2", n)
	}
}

func TestNamespaceSelection(t *testing.T) {
	f := newFakes([]runtime.Object{
		namespace("istio-system", nil),
		namespace("in", map[string]string{"istio-discovery": "enabled"}),
		namespace("out", nil),
		service("in", "a"), service("out", "b"), service("istio-system", "istiod"),
		pod("in", "a-1"), pod("out", "b-1"),
	},
		virtualService("in", "a", "v1", vsSpec("a", 100)),
		virtualService("out", "b", "v1", vsSpec("b", 100)),
	)
	sel := []metav1.LabelSelector{{MatchLabels: map[string]string{"istio-discovery": "enabled"}}}
	_, rec := start(t, f, Options{Namespaces: sel})
	in := rec.waitFor(t, "initial inputs", func(model.Inputs) bool { return true })
	if got, want := describe(in), "ns[in istio-system] svc[in/a istio-system/istiod] pod[in/a-1] vs[in/a]"; got != want {
		t.Errorf("in scope:\n got  %s\n want %s", got, want)
	}

	// Objects of an unselected namespace cause no update at all.
	n := rec.count()
	if _, err := f.kube.CoreV1().Services("out").Create(ctxBG, service("out", "c"), create); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if rec.count() != n {
		t.Errorf("an object in an unselected namespace caused an update")
	}

	// Labelling a namespace brings it and everything in it into scope.
	if _, err := f.kube.CoreV1().Namespaces().Update(ctxBG, namespace("out", map[string]string{"istio-discovery": "enabled"}), update); err != nil {
		t.Fatal(err)
	}
	in = rec.waitFor(t, "namespace out selected", func(in model.Inputs) bool { return len(in.Namespaces) == 3 })
	if got, want := describe(in), "ns[in istio-system out] svc[in/a istio-system/istiod out/b out/c] pod[in/a-1 out/b-1] vs[in/a out/b]"; got != want {
		t.Errorf("after labelling out:\n got  %s\n want %s", got, want)
	}

	// Unlabelling takes it out again.
	if _, err := f.kube.CoreV1().Namespaces().Update(ctxBG, namespace("in", nil), update); err != nil {
		t.Fatal(err)
	}
	in = rec.waitFor(t, "namespace in deselected", func(in model.Inputs) bool { return len(in.Namespaces) == 2 })
	if got, want := describe(in), "ns[istio-system out] svc[istio-system/istiod out/b out/c] pod[out/b-1] vs[out/b]"; got != want {
		t.Errorf("after unlabelling in:\n got  %s\n want %s", got, want)
	}
}

func TestInvalidNamespaceSelector(t *testing.T) {
	f := newFakes(nil)
	_, err := NewForClients(f.kube, f.dyn, Options{Namespaces: []metav1.LabelSelector{{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Sometimes"}},
	}}})
	if err == nil {
		t.Fatal("no error for an invalid selector")
	}
}

// syncBuffer is a log sink safe for the informers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A delete that happens while the watch is down is only seen by the re-list,
// which delivers it as a DeletedFinalStateUnknown tombstone.
func TestDeleteMissedDuringWatchOutageArrivesAsTombstone(t *testing.T) {
	f := newFakes([]runtime.Object{namespace("a", nil), pod("a", "p1"), pod("a", "p2")})
	var (
		mu       sync.Mutex
		watchers []*watch.RaceFreeFakeWatcher
	)
	// Pod watches are ours to break; everything else is the tracker's.
	f.kube.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		w := watch.NewRaceFreeFake()
		mu.Lock()
		watchers = append(watchers, w)
		mu.Unlock()
		return true, w, nil
	})
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, rec := start(t, f, Options{Logger: log})
	rec.waitFor(t, "initial inputs", func(in model.Inputs) bool { return len(in.Pods) == 2 })

	// The pod goes away, and the watch never says so.
	if err := f.kube.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "a", "p1"); err != nil {
		t.Fatal(err)
	}
	// The watch then fails with "resource version too old": the reflector
	// has to re-list.
	mu.Lock()
	w := watchers[len(watchers)-1]
	mu.Unlock()
	w.Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)

	in := rec.waitFor(t, "missed delete applied", func(in model.Inputs) bool { return len(in.Pods) == 1 })
	if got := names(in.Pods); !slices.Equal(got, []string{"a/p2"}) {
		t.Errorf("pods = %v, want [a/p2]", got)
	}
	if !strings.Contains(logs.String(), "delete noticed on re-list") || !strings.Contains(logs.String(), "key=a/p1") {
		t.Errorf("the delete did not arrive as a tombstone; log:\n%s", logs.String())
	}
}

func TestTombstoneHandling(t *testing.T) {
	f := newFakes(nil)
	s, err := NewForClients(f.kube, f.dyn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.handler("Pod")
	for _, obj := range []any{
		cache.DeletedFinalStateUnknown{Key: "a/p", Obj: pod("a", "p")},
		cache.DeletedFinalStateUnknown{Key: "a/p"},
	} {
		h.OnDelete(obj)
		select {
		case <-s.changed:
		default:
			t.Errorf("tombstone %v did not signal a change", obj)
		}
	}
	// A resync (same resourceVersion) is not a change.
	p := pod("a", "p")
	p.ResourceVersion = "3"
	h.OnUpdate(p, p.DeepCopy())
	select {
	case <-s.changed:
		t.Error("a resync signalled a change")
	default:
	}
}

func TestDebounceCoalescesBursts(t *testing.T) {
	f := newFakes([]runtime.Object{namespace("a", nil)})
	_, rec := start(t, f, Options{Debounce: 300 * time.Millisecond, MaxDelay: wait})
	rec.waitFor(t, "initial inputs", func(model.Inputs) bool { return true })
	before := rec.count()
	const n = 30
	for i := range n {
		if _, err := f.kube.CoreV1().Services("a").Create(ctxBG, service("a", fmt.Sprintf("s%02d", i)), create); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, "all services", func(in model.Inputs) bool { return len(in.Services) == n })
	// Normally exactly one; a scheduler stall of 300ms in the middle of the
	// loop could split the burst in two.
	if updates := rec.count() - before; updates > 2 {
		t.Errorf("%d events caused %d updates, want them coalesced into 1", n, updates)
	}
}

func TestDebounceMaxDelayBoundsSteadyStreams(t *testing.T) {
	f := newFakes([]runtime.Object{namespace("a", nil)})
	_, rec := start(t, f, Options{Debounce: 50 * time.Millisecond, MaxDelay: 150 * time.Millisecond})
	rec.waitFor(t, "initial inputs", func(model.Inputs) bool { return true })
	before := rec.count()
	// One event every 10ms for 900ms: the quiet period never comes, and
	// without the cap no update would be made until the stream ends.
	end := time.Now().Add(900 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		if _, err := f.kube.CoreV1().Services("a").Create(ctxBG, service("a", fmt.Sprintf("s%03d", i)), create); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if updates := rec.count() - before; updates < 3 {
		t.Errorf("a 900ms stream of events caused %d updates while it lasted, want ≥ 3 (one per 150ms at most)", updates)
	}
}

// lockedDiscovery lets a test change what discovery answers while Run polls it.
type lockedDiscovery struct {
	mu        sync.Mutex
	resources []*metav1.APIResourceList
}

func (d *lockedDiscovery) set(r []*metav1.APIResourceList) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resources = r
}

func (d *lockedDiscovery) fake() *fakediscovery.FakeDiscovery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{Resources: d.resources}}
}

func (d *lockedDiscovery) ServerGroups() (*metav1.APIGroupList, error) {
	return d.fake().ServerGroups()
}

func (d *lockedDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	return d.fake().ServerResourcesForGroupVersion(gv)
}

func TestPreferredServedVersion(t *testing.T) {
	tests := []struct {
		name   string
		served []*metav1.APIResourceList
		want   map[string]string // kind -> version, "" for not watched
	}{
		{"v1 when served", servedResources("v1alpha3", "v1beta1", "v1"),
			map[string]string{"VirtualService": "v1", "PeerAuthentication": "v1"}},
		{"v1beta1 without v1", servedResources("v1alpha3", "v1beta1"),
			map[string]string{"VirtualService": "v1beta1", "Sidecar": "v1beta1", "AuthorizationPolicy": "v1beta1"}},
		{"v1alpha3 alone", servedResources("v1alpha3"),
			// security.istio.io was never served as v1alpha3.
			map[string]string{"VirtualService": "v1alpha3", "Gateway": "v1alpha3", "PeerAuthentication": ""}},
		{"no Istio CRDs", nil,
			map[string]string{"VirtualService": "", "RequestAuthentication": ""}},
		{"per kind", []*metav1.APIResourceList{
			{GroupVersion: "networking.istio.io/v1", APIResources: []metav1.APIResource{{Name: "virtualservices"}}},
			{GroupVersion: "networking.istio.io/v1alpha3", APIResources: []metav1.APIResource{{Name: "virtualservices"}, {Name: "sidecars"}}},
		}, map[string]string{"VirtualService": "v1", "Sidecar": "v1alpha3", "Gateway": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &lockedDiscovery{resources: tc.served}
			f := newFakes(nil)
			s, err := newSource(f.kube, f.dyn, d, Options{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			missing, ok := s.discover(ctxBG)
			if !ok {
				t.Fatal("discover failed")
			}
			for _, k := range s.istio {
				want, check := tc.want[k.kind]
				if !check || k.unimplemented { // Gateway API's Gateway has the same kind name
					continue
				}
				if !check {
					continue
				}
				if k.gvr.Version != want {
					t.Errorf("%s: watching version %q, want %q", k.kind, k.gvr.Version, want)
				}
				if (want == "") != slices.Contains(missing, k) {
					t.Errorf("%s: missing=%v", k.kind, slices.Contains(missing, k))
				}
			}
		})
	}
}

func TestObjectsOfOlderVersionsAreDecodedAsV1(t *testing.T) {
	f := newFakes([]runtime.Object{namespace("a", nil)},
		virtualService("a", "old", "v1beta1", vsSpec("reviews", 100)))
	f.kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = servedResources("v1alpha3", "v1beta1")
	_, rec := start(t, f, Options{})
	in := rec.waitFor(t, "initial inputs", func(in model.Inputs) bool { return len(in.VirtualServices) == 1 })
	if got := in.VirtualServices[0].APIVersion; got != "networking.istio.io/v1" {
		t.Errorf("apiVersion = %q, want networking.istio.io/v1", got)
	}
}

func TestCRDInstalledAfterStart(t *testing.T) {
	d := &lockedDiscovery{}
	f := newFakes([]runtime.Object{namespace("a", nil)})
	s, err := newSource(f.kube, f.dyn, d, Options{Logger: quietLogger(), CRDPollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	runSource(t, s, rec)
	rec.waitFor(t, "initial inputs", func(in model.Inputs) bool { return len(in.Namespaces) == 1 })

	if _, err := f.dyn.Resource(paGVR).Namespace("a").Create(ctxBG, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"namespace": "a", "name": "strict"},
		"spec":     map[string]any{"mtls": map[string]any{"mode": "STRICT"}},
	}}, create); err != nil {
		t.Fatal(err)
	}
	d.set(servedResources("v1"))
	rec.waitFor(t, "PeerAuthentication once its CRD is served", func(in model.Inputs) bool {
		return len(in.PeerAuthentications) == 1
	})
}

func TestDecodingDoesNotMutateCachedObjects(t *testing.T) {
	f := newFakes(nil)
	s, err := NewForClients(f.kube, f.dyn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	k := s.istio[0]
	u := virtualService("", "no-namespace", "v1alpha3", vsSpec("reviews", 100))
	before := u.DeepCopy()
	d := s.decodeIstio(k, u)
	if d.value == nil {
		t.Fatal("not decoded")
	}
	if !equality(before, u) {
		t.Errorf("decoding modified the cached object:\n before %v\n after  %v", before.Object, u.Object)
	}
}

func equality(a, b *unstructured.Unstructured) bool {
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	return bytes.Equal(ja, jb)
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{Kind: "Gateway", Namespace: "x", Name: "gw", Field: "spec.servers[0].port.number", Reason: "expected an integer (uint32), got string \"eighty\""},
			`Gateway x/gw: spec.servers[0].port.number: expected an integer (uint32), got string "eighty"`},
		{Error{Kind: "Sidecar", Namespace: "x", Name: "s", Reason: "missing metadata.name"},
			`Sidecar x/s: missing metadata.name`},
		{Error{Kind: "VirtualService", Namespace: "x", Name: "v", Field: "metadata.lables", Reason: `unknown field "metadata.lables"`},
			`VirtualService x/v: unknown field "metadata.lables"`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// Secrets: only possible gateway credentials reach the model, whole; every
// other Secret is emptied in the cache and its events rebuild nothing.
func TestSecretsOnlyCredentials(t *testing.T) {
	cred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "gw-cred"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("crt"), "tls.key": []byte("key")}}
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "db-password"}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"password": []byte("hunter2")}}
	f := newFakes([]runtime.Object{namespace("istio-system", nil), cred, opaque})
	s, rec := start(t, f, Options{})
	in := rec.waitFor(t, "initial inputs", func(in model.Inputs) bool { return len(in.Secrets) == 1 })
	if in.Secrets[0].Name != "gw-cred" || string(in.Secrets[0].Data["tls.key"]) != "key" {
		t.Fatalf("secrets = %+v", in.Secrets[0])
	}
	cached, err := s.secrets.Secrets("istio-system").Get("db-password")
	if err != nil {
		t.Fatal(err)
	}
	if len(cached.Data) != 0 {
		t.Errorf("a non-credential Secret's data is cached: %v", cached.Data)
	}
	n := rec.count()
	upd := opaque.DeepCopy()
	upd.Data["password"] = []byte("changed")
	upd.ResourceVersion = "2"
	if _, err := f.kube.CoreV1().Secrets("istio-system").Update(ctxBG, upd, update); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // well past the debounce
	if got := rec.count(); got != n {
		t.Errorf("a non-credential Secret's update rebuilt the inputs (%d onChange calls)", got-n)
	}
	renewed := cred.DeepCopy()
	renewed.Data["tls.crt"] = []byte("crt2")
	renewed.ResourceVersion = "3"
	if _, err := f.kube.CoreV1().Secrets("istio-system").Update(ctxBG, renewed, update); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "renewed credential", func(in model.Inputs) bool {
		return len(in.Secrets) == 1 && string(in.Secrets[0].Data["tls.crt"]) == "crt2"
	})
}

// A change lists its own kind again; every other kind is handed over as the
// same slice of the same objects (what lets the model start from its last
// snapshot), and a Namespace event, which may change the scope, lists all.
func TestChangeListsOnlyItsKind(t *testing.T) {
	slice := func(addr string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "reviews-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}}, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{addr}}}}
	}
	f := newFakes([]runtime.Object{namespace("a", map[string]string{"mesh": "yes"}), namespace("b", nil), service("a", "reviews"),
		service("b", "ratings"), pod("a", "reviews-v1"), slice("10.1.0.1")},
		virtualService("a", "reviews", "v1", vsSpec("reviews", 100)))
	_, rec := start(t, f, Options{Namespaces: []metav1.LabelSelector{{MatchLabels: map[string]string{"mesh": "yes"}}}})
	first := rec.waitFor(t, "initial inputs", func(in model.Inputs) bool { return len(in.EndpointSlices) == 1 })

	if _, err := f.kube.DiscoveryV1().EndpointSlices("a").Update(ctxBG, slice("10.1.0.2"), update); err != nil {
		t.Fatal(err)
	}
	next := rec.waitFor(t, "slice updated", func(in model.Inputs) bool {
		return len(in.EndpointSlices) == 1 && in.EndpointSlices[0].Endpoints[0].Addresses[0] == "10.1.0.2"
	})
	same := func(a, b any) bool {
		va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
		return va.Len() == vb.Len() && (va.Len() == 0 || va.UnsafePointer() == vb.UnsafePointer())
	}
	for _, k := range []struct {
		name string
		a, b any
	}{{"Namespaces", first.Namespaces, next.Namespaces}, {"Services", first.Services, next.Services}, {"Pods", first.Pods, next.Pods}} {
		if !same(k.a, k.b) {
			t.Errorf("%s listed again for an EndpointSlice change", k.name)
		}
	}
	if next.VirtualServices[0] != first.VirtualServices[0] {
		t.Error("Istio objects decoded again for an EndpointSlice change")
	}

	// Namespace b joins the mesh: its service is listed though no Service changed.
	if _, err := f.kube.CoreV1().Namespaces().Update(ctxBG, namespace("b", map[string]string{"mesh": "yes"}), update); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "namespace b in scope", func(in model.Inputs) bool { return len(in.Services) == 2 })
}
