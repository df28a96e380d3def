package kube

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Kinds mizzen does not implement are watched by name: an EnvoyFilter is in
// the inputs (for the model to report), without its spec; HTTPRoute, served
// but forbidden to mizzen, is skipped with a log line and does not keep the
// source from becoming ready; the other Gateway API CRDs are not installed.
func TestUnimplementedKindsWatched(t *testing.T) {
	kube := kubefake.NewClientset(namespace("default", nil))
	served := servedResources("v1", "v1beta1")
	served = append(served,
		&metav1.APIResourceList{GroupVersion: "networking.istio.io/v1alpha3", APIResources: []metav1.APIResource{{Name: "envoyfilters", Kind: "EnvoyFilter", Namespaced: true}}},
		&metav1.APIResourceList{GroupVersion: "gateway.networking.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "httproutes", Kind: "HTTPRoute", Namespaced: true}}})
	kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = served
	gvrs := istioGVRs()
	ef := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "envoyfilters"}
	hr := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	gvrs[ef], gvrs[hr] = "EnvoyFilterList", "HTTPRouteList"
	filter := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
		"metadata": map[string]any{"namespace": "default", "name": "lua"},
		"spec":     map[string]any{"configPatches": []any{map[string]any{"applyTo": "HTTP_FILTER"}}},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), gvrs, filter)
	dyn.PrependReactor("list", "httproutes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(hr.GroupResource(), "", nil)
	})
	s, rec := start(t, fakes{kube: kube, dyn: dyn}, Options{})
	in := rec.waitFor(t, "the EnvoyFilter by name", func(in model.Inputs) bool {
		return len(in.Unimplemented) == 1
	})
	if !s.Ready() {
		t.Error("source not ready")
	}
	got := in.Unimplemented[0]
	if got.Kind != "EnvoyFilter" || got.Namespace != "default" || got.Name != "lua" || got.APIVersion != "networking.istio.io/v1alpha3" {
		t.Errorf("unimplemented object %+v, want EnvoyFilter default/lua", got)
	}
	// Another kind's change hands over the same object (the model compares
	// inputs by identity to start from its last snapshot).
	if _, err := kube.CoreV1().Services("default").Create(ctxBG, service("default", "reviews"), create); err != nil {
		t.Fatal(err)
	}
	in = rec.waitFor(t, "the service", func(in model.Inputs) bool { return len(in.Services) == 1 })
	if len(in.Unimplemented) != 1 || in.Unimplemented[0] != got {
		t.Error("the EnvoyFilter's metadata was made again for a Service change")
	}
}

// The informer of an unimplemented kind keeps identity only.
func TestStripToMetadata(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
		"metadata": map[string]any{"namespace": "default", "name": "lua", "labels": map[string]any{"a": "b"},
			"annotations": map[string]any{"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"}},
		"spec":   map[string]any{"configPatches": []any{}},
		"status": map[string]any{},
	}}
	out, err := stripToMetadata(u)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*unstructured.Unstructured)
	if got.Object["spec"] != nil || got.Object["status"] != nil || got.GetName() != "lua" || got.GetLabels()["a"] != "b" {
		t.Errorf("stripped: %v", got.Object)
	}
	if a := got.GetAnnotations(); a["keep"] != "me" || a["kubectl.kubernetes.io/last-applied-configuration"] != "" {
		t.Errorf("annotations: %v", a)
	}
}
