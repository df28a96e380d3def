package translate

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// VirtualService http[].rewrite -> RouteAction prefix_rewrite / regex_rewrite /
// host_rewrite_literal.

// applyRewrite sets the path rewrite and returns the authority to rewrite to
// (rewrite.authority wins over a Host header set in headers, as in Istio).
func applyRewrite(rw *networkingapi.HTTPRewrite, action *routev3.RouteAction, authority string) string {
	if rw == nil {
		return authority
	}
	if re := rw.GetUriRegexRewrite(); re != nil {
		action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: re.GetMatch()},
			Substitution: re.GetRewrite(),
		}
	} else if rw.GetUri() != "" {
		// Envoy replaces the matched prefix; for an exact match that is the whole path.
		action.PrefixRewrite = rw.GetUri()
	}
	if rw.GetAuthority() != "" {
		return rw.GetAuthority()
	}
	return authority
}
