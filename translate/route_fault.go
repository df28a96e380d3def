package translate

import (
	"math"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// VirtualService http[].fault -> envoy.filters.http.fault. As in Istio, every
// outbound HCM carries the filter with an empty config (it does nothing) and a
// route that injects faults overrides it in typed_per_filter_config. Keeping the
// filter unconditional means adding the first fault changes only RDS, never the
// listener (a listener change drains its connections).

const faultFilterName = "envoy.filters.http.fault"

func faultHTTPFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: faultFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}}
}

// faultPerRoute converts an Istio fault; nil when nothing would be injected
// (a delay without fixedDelay, an abort without a status), as Istio drops those.
func faultPerRoute(in *networkingapi.HTTPFaultInjection) *faultv3.HTTPFault {
	if in == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := in.GetDelay(); d != nil && d.GetFixedDelay() != nil {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: d.GetFixedDelay()},
		}
		if d.GetPercentage() != nil {
			out.Delay.Percentage = percentToFraction(d.GetPercentage())
		} else {
			out.Delay.Percentage = intPercentToFraction(uint32(max(d.GetPercent(), 0))) //nolint:staticcheck // deprecated field still honoured, as in Istio
		}
	}
	if a := in.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{}
		switch e := a.GetErrorType().(type) {
		case *networkingapi.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
		case *networkingapi.HTTPFaultInjection_Abort_GrpcStatus:
			code, _ := model.GRPCStatusCode(e.GrpcStatus)
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
		default:
			abort = nil
		}
		if abort != nil {
			// Unset percentage aborts nothing, in Istio and in Envoy alike.
			if a.GetPercentage() != nil {
				abort.Percentage = percentToFraction(a.GetPercentage())
			}
			out.Abort = abort
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// percentToFraction turns Istio's 0-100 double into parts per million, so
// 0.1% is expressible (Istio's precision: 0.0001%).
func percentToFraction(p *networkingapi.Percent) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(p.GetValue() * 10000)), Denominator: typev3.FractionalPercent_MILLION}
}

func intPercentToFraction(p uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: p, Denominator: typev3.FractionalPercent_HUNDRED}
}

func runtimeFraction(f *typev3.FractionalPercent) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: f}
}
