package model

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// UnimplementedKind is an Istio or Gateway API kind mizzen reads only to say
// it does not apply it: a user moving from istiod must not lose config
// without a word.
type UnimplementedKind struct {
	Group, Kind, Resource string
	// Versions are the served versions to read it in, preferred first.
	Versions []string
	// Why is what the user loses, for the message.
	Why string
}

// UnimplementedKinds lists them. Watching one whose CRD is not installed is
// harmless: the Kubernetes source waits for it like for Istio's own CRDs.
func UnimplementedKinds() []UnimplementedKind {
	istioNet := []string{"v1", "v1beta1", "v1alpha3"}
	gw := []string{"v1", "v1beta1", "v1alpha3", "v1alpha2"}
	return []UnimplementedKind{
		{"networking.istio.io", "EnvoyFilter", "envoyfilters", []string{"v1alpha3"}, "its patches to Envoy's config are not made"},
		{"networking.istio.io", "WorkloadEntry", "workloadentries", istioNet, "the workload (a VM or other non-Kubernetes endpoint) gets no endpoints"},
		{"networking.istio.io", "WorkloadGroup", "workloadgroups", istioNet, "no WorkloadEntries are made from it"},
		{"networking.istio.io", "ProxyConfig", "proxyconfigs", []string{"v1beta1"}, "its proxy settings (concurrency, image, environment) are not applied"},
		{"telemetry.istio.io", "Telemetry", "telemetries", []string{"v1", "v1alpha1"}, "its access logging, tracing and metrics settings are not applied (mizzen reads the mesh config's accessLogFile, accessLogEncoding, enableTracing and defaultConfig.tracing)"},
		{"extensions.istio.io", "WasmPlugin", "wasmplugins", []string{"v1alpha1"}, "its Wasm filter is not added"},
		{"extensions.istio.io", "TrafficExtension", "trafficextensions", []string{"v1alpha1"}, "its filter is not added"},
		{"gateway.networking.k8s.io", "GatewayClass", "gatewayclasses", gw, "Gateway API is not implemented: use Istio's Gateway and VirtualService"},
		{"gateway.networking.k8s.io", "Gateway", "gateways", gw, "Gateway API is not implemented: no gateway is deployed or configured for it; use Istio's networking.istio.io Gateway"},
		{"gateway.networking.k8s.io", "HTTPRoute", "httproutes", gw, "Gateway API is not implemented: its routes are not applied; use a VirtualService"},
		{"gateway.networking.k8s.io", "GRPCRoute", "grpcroutes", gw, "Gateway API is not implemented: its routes are not applied; use a VirtualService"},
		{"gateway.networking.k8s.io", "TCPRoute", "tcproutes", gw, "Gateway API is not implemented: its routes are not applied; use a VirtualService tcp route"},
		{"gateway.networking.k8s.io", "TLSRoute", "tlsroutes", gw, "Gateway API is not implemented: its routes are not applied; use a VirtualService tls route"},
		{"gateway.networking.k8s.io", "UDPRoute", "udproutes", gw, "Gateway API is not implemented (and Envoy sidecars do not proxy UDP)"},
		{"gateway.networking.k8s.io", "ReferenceGrant", "referencegrants", gw, "Gateway API is not implemented"},
		{"gateway.networking.k8s.io", "BackendTLSPolicy", "backendtlspolicies", gw, "Gateway API is not implemented: use a DestinationRule's trafficPolicy.tls"},
		{"gateway.networking.k8s.io", "ListenerSet", "listenersets", gw, "Gateway API is not implemented"},
		{"gateway.networking.x-k8s.io", "XListenerSet", "xlistenersets", []string{"v1alpha1"}, "Gateway API is not implemented"},
		{"gateway.networking.x-k8s.io", "XBackendTrafficPolicy", "xbackendtrafficpolicies", []string{"v1alpha1"}, "Gateway API is not implemented: use a DestinationRule"},
		{"inference.networking.k8s.io", "InferencePool", "inferencepools", []string{"v1"}, "Gateway API inference extensions are not implemented"},
	}
}

// UnimplementedKindOf finds an apiVersion/kind in UnimplementedKinds.
func UnimplementedKindOf(apiVersion, kind string) (UnimplementedKind, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return UnimplementedKind{}, false
	}
	for _, k := range UnimplementedKinds() {
		if k.Group == gv.Group && k.Kind == kind {
			return k, true
		}
	}
	return UnimplementedKind{}, false
}

// UnimplementedError is the report for one object of an unimplemented kind.
func UnimplementedError(o *metav1.PartialObjectMetadata) ConfigError {
	why := "mizzen does not read it"
	group := o.APIVersion
	if k, ok := UnimplementedKindOf(o.APIVersion, o.Kind); ok {
		why, group = k.Why, k.Group
	}
	group, _, _ = strings.Cut(group, "/")
	return ConfigError{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Field: "kind", Code: "UnsupportedKind",
		Message: fmt.Sprintf("mizzen does not implement %s (%s): this object is not applied (%s)", o.Kind, group, why)}
}

// reportUnimplemented names every object of an unimplemented kind as not
// applied (one error each: it is skipped as a whole).
func (s *Snapshot) reportUnimplemented(in *Inputs) {
	objs := append(in.Unimplemented[:0:0], in.Unimplemented...)
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
	})
	for _, o := range objs {
		s.addError(UnimplementedError(o))
	}
}
