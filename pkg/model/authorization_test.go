package model

import (
	"strings"
	"testing"

	securityapi "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	security "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func authzPolicyObj(ns, name string, sel map[string]string, action securityapi.AuthorizationPolicy_Action, rules ...*securityapi.Rule) *security.AuthorizationPolicy {
	ap := &security.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	ap.Spec.Action = action
	ap.Spec.Rules = rules
	if sel != nil {
		ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
	}
	return ap
}

func TestAuthorizationPoliciesFor(t *testing.T) {
	in := &Inputs{AuthorizationPolicies: []*security.AuthorizationPolicy{
		authzPolicyObj("default", "by-label", map[string]string{"app": "a"}, securityapi.AuthorizationPolicy_ALLOW),
		authzPolicyObj("default", "ns-wide", nil, securityapi.AuthorizationPolicy_DENY),
		authzPolicyObj("istio-system", "mesh", nil, securityapi.AuthorizationPolicy_AUDIT),
		authzPolicyObj("other", "elsewhere", nil, securityapi.AuthorizationPolicy_DENY),
	}}
	s := Build(in, 1)
	names := func(ps []*AuthzPolicy) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Namespace+"/"+p.Name+":"+string(p.Action))
		}
		return strings.Join(out, ",")
	}
	if got, want := names(s.AuthorizationPoliciesFor("default", map[string]string{"app": "a"})), "default/by-label:ALLOW,default/ns-wide:DENY,istio-system/mesh:AUDIT"; got != want {
		t.Errorf("app=a: got %s, want %s", got, want)
	}
	if got, want := names(s.AuthorizationPoliciesFor("default", map[string]string{"app": "b"})), "default/ns-wide:DENY,istio-system/mesh:AUDIT"; got != want {
		t.Errorf("app=b: got %s, want %s", got, want)
	}
}

func TestAuthorizationPolicyInvalidFieldsWarn(t *testing.T) {
	rule := &securityapi.Rule{
		To:   []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{"/a/{id}"}, Methods: []string{"GET"}}}},
		When: []*securityapi.Condition{{Key: "source.ip", Values: []string{"nope"}}, {Key: "request.headers[x]", Values: []string{"v"}}},
	}
	s := Build(&Inputs{AuthorizationPolicies: []*security.AuthorizationPolicy{
		authzPolicyObj("default", "p", nil, securityapi.AuthorizationPolicy_ALLOW, rule),
		authzPolicyObj("default", "c", nil, securityapi.AuthorizationPolicy_CUSTOM),
	}}, 1)
	var fields []string
	for _, e := range s.Errors {
		if !e.Warning {
			t.Errorf("unexpected error %v", e)
		}
		fields = append(fields, e.Name+" "+e.Field)
	}
	if got, want := strings.Join(fields, ";"), "c spec.action;p spec.rules[0].to[0].operation.paths;p spec.rules[0].when[0]"; got != want {
		t.Errorf("warnings on %s, want %s", got, want)
	}
	ps := s.AuthorizationPoliciesFor("default", nil)
	if len(ps) != 2 || ps[0].Action != AuthzDeny {
		t.Fatalf("CUSTOM policy must be kept as DENY, got %+v", ps)
	}
	r := ps[1].Rules[0]
	if !r.To[0][1].Invalid || r.To[0][0].Invalid || !r.When[0].Invalid || r.When[1].Invalid {
		t.Errorf("invalid marks wrong: %+v %+v", r.To, r.When)
	}
}

// Istio reads only a leading or trailing "*" as a wildcard and keeps the rule
// ("/api/v*/payments*" is the prefix "/api/v*/payments"); path templates are
// valid when "{*}"/"{**}" are whole segments and "{**}" is last.
func TestAuthorizationPolicyPathsAsIstio(t *testing.T) {
	for _, c := range []struct {
		path, code string
		invalid    bool
	}{
		{"/api/v*/payments*", "AuthzWildcardLiteral", false},
		{"*a*", "AuthzWildcardLiteral", false},
		{"/api/*", "", false},
		{"/items/{*}/detail", "", false},
		{"/static/{**}", "", false},
		{"/a/{**}/b", "UnsupportedAuthzField", true},
		{"/a/v{*}", "UnsupportedAuthzField", true},
		{"/a/{id}", "UnsupportedAuthzField", true},
		{"/a/x*/{*}", "UnsupportedAuthzField", true},
		{"{*}/a", "UnsupportedAuthzField", true},
	} {
		rule := &securityapi.Rule{To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{Paths: []string{c.path}}}}}
		s := Build(&Inputs{AuthorizationPolicies: []*security.AuthorizationPolicy{
			authzPolicyObj("default", "p", nil, securityapi.AuthorizationPolicy_ALLOW, rule)}}, 1)
		var codes []string
		for _, e := range s.Errors {
			codes = append(codes, e.Code)
		}
		if got := strings.Join(codes, ","); got != c.code {
			t.Errorf("%q: findings %q, want %q", c.path, got, c.code)
		}
		if got := s.AuthorizationPoliciesFor("default", nil)[0].Rules[0].To[0][0].Invalid; got != c.invalid {
			t.Errorf("%q: invalid %v, want %v", c.path, got, c.invalid)
		}
	}
}
