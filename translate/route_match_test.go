package translate

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
)

// An empty prefix matches any value of a header that is present, as in
// istiod: Envoy refuses an empty prefix in a StringMatcher.
func TestEmptyPrefixIsPresence(t *testing.T) {
	hm := headerMatcher("X-User", &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Prefix{Prefix: ""}}, false)
	if !hm.GetPresentMatch() || hm.GetName() != "x-user" {
		t.Errorf("got %v, want a presence match on x-user", hm)
	}
	if err := hm.Validate(); err != nil {
		t.Errorf("Envoy would refuse it: %v", err)
	}
	hm = headerMatcher("x-user", &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Prefix{Prefix: "a"}}, false)
	if hm.GetStringMatch().GetPrefix() != "a" {
		t.Errorf("a non-empty prefix: got %v", hm)
	}
}
