package model

import (
	"strings"
	"testing"
)

// The names Kubernetes accepts per kind: Namespaces DNS-1123 labels, Services
// DNS-1035 labels, everything else (Istio's kinds too) DNS-1123 subdomains;
// namespaces of namespaced objects DNS-1123 labels.
func TestObjectNameError(t *testing.T) {
	long := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a'
		}
		return string(b)
	}
	for _, c := range []struct {
		kind, ns, name string
		ok             bool
	}{
		{"VirtualService", "shop", "reviews-edge", true},
		{"VirtualService", "shop", "reviews.v1", true},
		{"VirtualService", "shop", "Reviews", false},
		{"VirtualService", "shop", "reviews_edge", false},
		{"VirtualService", "shop", "-reviews", false},
		{"VirtualService", "shop", "a/b", false},
		{"VirtualService", "shop", "..", false},
		{"VirtualService", "shop", long(253), true},
		{"VirtualService", "shop", long(254), false},
		{"Gateway", "Shop", "edge", false},
		{"Gateway", "shop.prod", "edge", false},
		{"Pod", "default", "reviews-v1-0.x", true},
		{"Secret", "istio-system", "edge-cert", true},
		{"Secret", "istio-system", "edge cert", false},
		{"Service", "default", "reviews", true},
		{"Service", "default", "1reviews", false}, // DNS-1035: starts with a letter
		{"Service", "default", "reviews.v1", false},
		{"Service", "default", long(64), false},
		{"Namespace", "", "shop", true},
		{"Namespace", "", "shop.prod", false},
		{"Namespace", "", long(63), true},
		{"Namespace", "", long(64), false},
		{"EndpointSlice", "default", "reviews-abc12", true},
		{"ServiceAccount", "default", "bookinfo_reviews", false},
	} {
		err := ObjectNameError(c.kind, c.ns, c.name)
		if (err == nil) != c.ok {
			t.Errorf("ObjectNameError(%s, %q, %q) = %v, want ok=%v", c.kind, c.ns, c.name, err, c.ok)
		}
	}
	err := ObjectNameError("VirtualService", "shop", "Reviews_Edge")
	if err == nil || !strings.Contains(err.Error(), `metadata.name "Reviews_Edge" is not a valid VirtualService name (a DNS-1123 subdomain`) {
		t.Errorf("message = %v", err)
	}
}
