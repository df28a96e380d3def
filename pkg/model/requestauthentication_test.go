package model

import (
	"testing"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	security "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func requestAuthn(ns, name string, sel map[string]string) *security.RequestAuthentication {
	ra := &security.RequestAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	ra.Spec.JwtRules = []*securityapi.JWTRule{{Issuer: name, JwksUri: "https://198.18.0.1/jwks"}}
	if sel != nil {
		ra.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: sel}
	}
	return ra
}

func TestRequestAuthenticationsFor(t *testing.T) {
	snap := Build(&Inputs{RequestAuthentications: []*security.RequestAuthentication{
		requestAuthn("istio-system", "mesh-wide", nil),
		requestAuthn("istio-system", "root-selected", map[string]string{"app": "web"}),
		requestAuthn("shop", "shop-wide", nil),
		requestAuthn("shop", "web-only", map[string]string{"app": "web"}),
		requestAuthn("other", "other-ns", nil),
	}}, 1)
	names := func(p *Proxy) []string {
		var out []string
		for _, ra := range snap.RequestAuthenticationsFor(p) {
			out = append(out, ra.Name)
		}
		return out
	}
	got := names(&Proxy{Namespace: "shop", Labels: map[string]string{"app": "web"}})
	want := []string{"mesh-wide", "root-selected", "shop-wide", "web-only"}
	if len(got) != len(want) {
		t.Fatalf("web in shop: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("web in shop: got %v, want %v", got, want)
		}
	}
	if got := names(&Proxy{Namespace: "shop", Labels: map[string]string{"app": "db"}}); len(got) != 2 {
		t.Errorf("db in shop: got %v, want [mesh-wide shop-wide]", got)
	}
}

func TestParseJWKSURI(t *testing.T) {
	for in, want := range map[string]JWKSURI{
		"https://keys.example.com/jwks": {URI: "https://keys.example.com/jwks", HTTPS: true, Host: "keys.example.com", Port: 443},
		"http://127.0.0.1:8080/jwks":    {URI: "http://127.0.0.1:8080/jwks", Host: "127.0.0.1", Port: 8080, HostIP: true},
		"https://[2001:db8::1]:8443/k":  {URI: "https://[2001:db8::1]:8443/k", HTTPS: true, Host: "2001:db8::1", Port: 8443, HostIP: true},
	} {
		got, err := ParseJWKSURI(in)
		if err != nil || got != want {
			t.Errorf("ParseJWKSURI(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x/jwks", "/jwks", "https:///jwks", "http://x:0/", "http://x:99999/"} {
		if _, err := ParseJWKSURI(bad); err == nil {
			t.Errorf("ParseJWKSURI(%q) accepted", bad)
		}
	}
}
