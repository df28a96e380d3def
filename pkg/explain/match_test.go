package explain

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestDomainMatchPrefersExact(t *testing.T) {
	for _, c := range []struct {
		domain, host string
		want         int
	}{
		{"web", "web", 0}, {"*.shop.svc", "api.shop.svc", 1}, {"api.*", "api.shop", 2}, {"*", "x", 3},
		{"web", "web:80", -1}, {"*.shop.svc", ".shop.svc", -1}, {"WEB", "web", 0},
	} {
		if got := domainMatch(c.domain, c.host); got != c.want {
			t.Errorf("domainMatch(%q, %q) = %d, want %d", c.domain, c.host, got, c.want)
		}
	}
}

func TestRouteMatch(t *testing.T) {
	r, err := NewRequest("post", "http://web/Items/42?debug=1", map[string]string{"X-Canary": "yes-please"})
	if err != nil {
		t.Fatal(err)
	}
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	for name, c := range map[string]struct {
		m    *routev3.RouteMatch
		want bool
	}{
		"prefix is case sensitive": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/items"}}, false},
		"unless told otherwise": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/items"},
			CaseSensitive: wrapBool(false)}, true},
		"regex on the path without query": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "/Items/[0-9]+"}}}, true},
		"method header": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("POST")}}}}, true},
		"missing header fails a string match": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("")}}}}, false},
		"inverted presence": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{Name: "x-canary", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, false},
		"query parameter": {&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("1")}}}}, true},
	} {
		if got, why := routeMatch(c.m, r); got != c.want {
			t.Errorf("%s: %v (%v), want %v", name, got, why, c.want)
		}
	}
}

func wrapBool(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }

func TestVerdictsAgreeOrMix(t *testing.T) {
	tr := &Trace{}
	tr.addVerdict(Verdict{Proxy: "a", Decision: "DENIED", Policy: "p"})
	tr.addVerdict(Verdict{Proxy: "b", Decision: "DENIED", Policy: "p"})
	if tr.Decision != "DENIED" || tr.Policy != "p" {
		t.Fatalf("agreeing destinations: %s %s", tr.Decision, tr.Policy)
	}
	tr.addVerdict(Verdict{Proxy: "c", Decision: "ALLOWED"})
	if tr.Decision != "MIXED" || len(tr.Verdicts) != 3 {
		t.Fatalf("disagreeing destinations: %s (%d verdicts)", tr.Decision, len(tr.Verdicts))
	}
}

// Envoy's uri_template: "*" one non-empty segment, "**" any rest.
func TestURITemplateMatch(t *testing.T) {
	for _, c := range []struct {
		tmpl, path string
		want       bool
	}{
		{"/items/*/detail", "/items/42/detail", true},
		{"/items/*/detail", "/items/4/2/detail", false},
		{"/items/*/detail", "/items//detail", false},
		{"/static/**", "/static/a/b.css", true},
		{"/static/**", "/static", false},
		{"/api/*/payments/**", "/api/v1/payments/", true},
		{"/api/*/payments/**", "/api/v1/payments", false},
	} {
		if got := uriTemplateMatch(c.tmpl, c.path); got != c.want {
			t.Errorf("uriTemplateMatch(%q, %q) = %v, want %v", c.tmpl, c.path, got, c.want)
		}
	}
}

// Envoy's RBAC matches principal_name against the peer certificate's URI SAN,
// scheme included; Istio's principals are written without it and translated
// with it, so explain must compare the caller's full SPIFFE ID.
func TestPeerPrincipal(t *testing.T) {
	for in, want := range map[string]string{
		"cluster.local/ns/default/sa/sleep":          "spiffe://cluster.local/ns/default/sa/sleep",
		"spiffe://cluster.local/ns/default/sa/sleep": "spiffe://cluster.local/ns/default/sa/sleep",
		"": "",
	} {
		if got := PeerPrincipal(in); got != want {
			t.Errorf("PeerPrincipal(%q) = %q, want %q", in, got, want)
		}
	}
	exact := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/default/sa/sleep"}}
	if ok, _ := stringMatch(exact, PeerPrincipal("spiffe://cluster.local/ns/default/sa/sleep")); !ok {
		t.Error("the policy's principal does not match the caller explain presents")
	}
}
