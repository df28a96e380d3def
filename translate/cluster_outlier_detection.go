package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// DestinationRule outlierDetection → cluster outlier_detection, as istiod's
// applyOutlierDetection does:
//
//	consecutive5xxErrors            consecutive_5xx; enforcing_consecutive_5xx 100 (0 when the count is 0)
//	consecutiveGatewayErrors        consecutive_gateway_failure; enforcing_consecutive_gateway_failure 100 (0 when 0)
//	consecutiveErrors (deprecated)  not applied: current istiod ignores it (its validation only warns), so a
//	                                rule with only this field ejects on Envoy's default 5 consecutive 5xx
//	splitExternalLocalOriginErrors  split_external_local_origin_errors; enforcing_local_origin_success_rate 0
//	consecutiveLocalOriginFailures  consecutive_local_origin_failure; enforcing_consecutive_local_origin_failure 100
//	interval, baseEjectionTime      interval, base_ejection_time
//	maxEjectionPercent              max_ejection_percent (when > 0; Envoy's default 10 otherwise)
//	minHealthPercent                common_lb_config.healthy_panic_threshold (0 when unset: Istio disables
//	                                Envoy's 50% panic mode whenever outlier detection is on)
//
// Success-rate ejection is always off (enforcing_success_rate 0), as in Istio.
// Not translated yet: outlierDetectionHttpErrorCodes.
func applyOutlierDetection(c *clusterv3.Cluster, od *networkingapi.OutlierDetection) {
	if od == nil {
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: u32(0)}
	if e := od.GetConsecutive_5XxErrors(); e != nil {
		out.Consecutive_5Xx = u32(e.GetValue())
		out.EnforcingConsecutive_5Xx = u32(enforcing(e.GetValue()))
	}
	if e := od.GetConsecutiveGatewayErrors(); e != nil {
		out.ConsecutiveGatewayFailure = u32(e.GetValue())
		out.EnforcingConsecutiveGatewayFailure = u32(enforcing(e.GetValue()))
	}
	out.Interval = od.GetInterval()
	out.BaseEjectionTime = od.GetBaseEjectionTime()
	if p := od.GetMaxEjectionPercent(); p > 0 {
		out.MaxEjectionPercent = u32(uint32(p))
	}
	if od.GetSplitExternalLocalOriginErrors() {
		out.SplitExternalLocalOriginErrors = true
		if n := od.GetConsecutiveLocalOriginFailures().GetValue(); n > 0 {
			out.ConsecutiveLocalOriginFailure = u32(n)
			out.EnforcingConsecutiveLocalOriginFailure = u32(100)
		}
		out.EnforcingLocalOriginSuccessRate = u32(0)
	}
	c.OutlierDetection = out
	if p := od.GetMinHealthPercent(); p >= 0 {
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(p)}
	}
}

// enforcing is Istio's rule: a detector with a positive threshold ejects every
// time (100%), a zero threshold turns it off.
func enforcing(threshold uint32) uint32 {
	if threshold > 0 {
		return 100
	}
	return 0
}
