package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// VirtualService http[].mirror (+ mirrorPercentage, deprecated mirrorPercent)
// and http[].mirrors -> RouteAction.request_mirror_policies. Envoy sends the
// copy fire-and-forget and ignores the answer. The copy keeps the original Host
// (disable_shadow_host_suffix_append), as current istiod sends it: Envoy's
// default "-shadow" suffix would make the mirror's own routing see a host no
// VirtualService names.

func mirrorPolicies(snap *model.Snapshot, hr *networkingapi.HTTPRoute, vsNamespace string, port uint32) []*routev3.RouteAction_RequestMirrorPolicy {
	var out []*routev3.RouteAction_RequestMirrorPolicy
	if m := hr.GetMirror(); m != nil {
		if f := mirrorFraction(hr.GetMirrorPercentage(), hr.GetMirrorPercent()); f != nil { //nolint:staticcheck // deprecated field still honoured, as in Istio
			out = append(out, mirrorPolicy(destinationCluster(snap, m, vsNamespace, port), f))
		}
	}
	for _, m := range hr.GetMirrors() {
		if m.GetDestination() == nil {
			continue
		}
		if f := mirrorFraction(m.GetPercentage(), nil); f != nil {
			out = append(out, mirrorPolicy(destinationCluster(snap, m.GetDestination(), vsNamespace, port), f))
		}
	}
	return out
}

// mirrorFraction: unset mirrors everything; an explicit 0 mirrors nothing
// (nil: no policy at all, as Istio emits none).
func mirrorFraction(pct *networkingapi.Percent, deprecated *wrapperspb.UInt32Value) *corev3.RuntimeFractionalPercent {
	switch {
	case pct != nil:
		if pct.GetValue() <= 0 {
			return nil
		}
		return runtimeFraction(percentToFraction(pct))
	case deprecated != nil:
		if deprecated.GetValue() == 0 {
			return nil
		}
		return runtimeFraction(intPercentToFraction(deprecated.GetValue()))
	}
	return runtimeFraction(intPercentToFraction(100))
}

func mirrorPolicy(cluster string, f *corev3.RuntimeFractionalPercent) *routev3.RouteAction_RequestMirrorPolicy {
	return &routev3.RouteAction_RequestMirrorPolicy{Cluster: cluster, RuntimeFraction: f, TraceSampled: boolv(false), DisableShadowHostSuffixAppend: true}
}
