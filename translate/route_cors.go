package translate

import (
	"strconv"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// VirtualService http[].corsPolicy -> envoy.filters.http.cors (Envoy >= 1.27
// style: an empty filter in the HCM, the policy per route in
// typed_per_filter_config). Like the fault filter it is always present, so a
// new policy is an RDS-only change.

const corsFilterName = "envoy.filters.http.cors"

func corsHTTPFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: corsFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}}
}

// corsPerRoute converts an Istio CorsPolicy the way Istio does: origins as
// string matchers (the deprecated allowOrigin list as exact matches), lists
// joined with ",", maxAge in whole seconds, the filter enabled for all requests.
func corsPerRoute(in *networkingapi.CorsPolicy) *corsv3.CorsPolicy {
	if in == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:     strings.Join(in.GetAllowMethods(), ","),
		AllowHeaders:     strings.Join(in.GetAllowHeaders(), ","),
		ExposeHeaders:    strings.Join(in.GetExposeHeaders(), ","),
		AllowCredentials: in.GetAllowCredentials(),
		FilterEnabled:    runtimeFraction(intPercentToFraction(100)),
		// Envoy before 1.30 forwarded preflights no origin matched; Istio keeps that
		// unless unmatchedPreflights is IGNORE.
		ForwardNotMatchingPreflights: wrapperspb.Bool(in.GetUnmatchedPreflights() != networkingapi.CorsPolicy_IGNORE),
	}
	if len(in.GetAllowOrigins()) > 0 {
		for _, o := range in.GetAllowOrigins() {
			if sm := stringMatcher(o); sm != nil {
				out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
			}
		}
	} else {
		for _, o := range in.GetAllowOrigin() { //nolint:staticcheck // deprecated field still honoured, as in Istio
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch,
				&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
		}
	}
	if in.GetMaxAge() != nil {
		out.MaxAge = strconv.FormatInt(in.GetMaxAge().GetSeconds(), 10)
	}
	return out
}
