package certs

import "testing"

func TestSpiffeIDRoundTrip(t *testing.T) {
	id := SpiffeID("cluster.local", "istio-system", "istio-ingressgateway-service-account")
	if id != "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account" {
		t.Fatal(id)
	}
	td, ns, sa, err := ParseSpiffeID(id)
	if err != nil || td != "cluster.local" || ns != "istio-system" || sa != "istio-ingressgateway-service-account" {
		t.Fatalf("got %q %q %q %v", td, ns, sa, err)
	}
	for _, bad := range []string{
		"",
		"cluster.local/ns/a/sa/b",
		"spiffe://cluster.local/ns/a/sa/",
		"spiffe:///ns/a/sa/b",
		"spiffe://cluster.local/ns/a/sa/b/",
		"spiffe://cluster.local/sa/b/ns/a",
		"spiffe://cluster.local/ns/a%2Fb/sa/c",
		"spiffe://cluster.local/ns/a/sa/b?x=1",
		"spiffe://cluster.local:443/ns/a/sa/b",
		"spiffe://user@cluster.local/ns/a/sa/b",
		"spiffe://Cluster.Local/ns/a/sa/b",
		"spiffe://cluster.local/ns/./sa/b",
		"spiffe://cluster.local//ns/a/sa/b",
		"SPIFFE://cluster.local/ns/a/sa/b",
	} {
		if _, _, _, err := ParseSpiffeID(bad); err == nil {
			t.Errorf("ParseSpiffeID(%q) accepted", bad)
		}
	}
}
