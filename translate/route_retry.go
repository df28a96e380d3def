package translate

import (
	"net/http"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// VirtualService http[].retries -> RouteAction.retry_policy, as Istio converts it.

const (
	previousHostsPredicateName   = "envoy.retry_host_predicates.previous_hosts"
	previousPrioritiesPluginName = "envoy.retry_priorities.previous_priorities"
)

// defaultRetryPolicy is what Istio applies when neither the route nor the mesh
// (defaultHttpRetryPolicy) sets retries: two retries of failures that happen
// before the request reached the app, preferring hosts not tried yet.
func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries:                    u32(2),
		RetriableStatusCodes:          []uint32{http.StatusServiceUnavailable},
		RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{previousHostsRetryPredicate()},
		HostSelectionRetryMaxAttempts: 5,
	}
}

func previousHostsRetryPredicate() *routev3.RetryPolicy_RetryHostPredicate {
	return &routev3.RetryPolicy_RetryHostPredicate{
		Name:       previousHostsPredicateName,
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushosts.PreviousHostsPredicate{})},
	}
}

// retryPolicy converts an Istio HTTPRetry. Unset uses the mesh's
// defaultHttpRetryPolicy, else Istio's default; attempts 0 disables retries.
// Everything the route leaves unset keeps the default's value.
func retryPolicy(r *networkingapi.HTTPRetry, mesh *meshv1alpha1.MeshConfig) *routev3.RetryPolicy {
	if r == nil {
		r = mesh.GetDefaultHttpRetryPolicy()
	}
	p := defaultRetryPolicy()
	if r == nil {
		return p
	}
	if r.GetAttempts() <= 0 {
		return nil
	}
	p.NumRetries = u32(uint32(r.GetAttempts()))
	if r.GetRetryOn() != "" {
		p.RetryOn, p.RetriableStatusCodes = parseRetryOn(r.GetRetryOn())
	}
	if t := r.GetPerTryTimeout(); t != nil {
		p.PerTryTimeout = t
	}
	if ignore := r.GetRetryIgnorePreviousHosts(); ignore != nil && !ignore.GetValue() {
		p.RetryHostPredicate = nil
	}
	if r.GetRetryRemoteLocalities().GetValue() {
		p.RetryPriority = &routev3.RetryPolicy_RetryPriority{
			Name: previousPrioritiesPluginName,
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: mustAny(
				&previouspriorities.PreviousPrioritiesConfig{UpdateFrequency: 2})},
		}
	}
	if b := r.GetBackoff(); b != nil {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: b}
	}
	return p
}

// parseRetryOn splits Istio's retryOn: numbers that are HTTP status codes become
// retriable_status_codes (and switch on "retriable-status-codes"), everything
// else is an Envoy retry_on / x-envoy-retry-grpc-on condition kept in order.
func parseRetryOn(s string) (string, []uint32) {
	var conds []string
	var codes []uint32
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
			codes = append(codes, uint32(n))
			continue
		}
		conds = append(conds, part)
	}
	retryOn := strings.Join(conds, ",")
	if len(codes) > 0 && !containsItem(conds, "retriable-status-codes") {
		if retryOn != "" {
			retryOn += ","
		}
		retryOn += "retriable-status-codes"
	}
	return retryOn, codes
}

func containsItem(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
