package featuretests

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Sidecars with the same namespace and labels get the same route tables, byte
// for byte and with the same version; a sidecar in another namespace gets its
// own (short names resolve in the caller's namespace). Outbound clusters do not
// depend on the proxy at all.
func TestRoutesSharedByNamespaceAndLabels(t *testing.T) {
	h := newHarness(t)
	h.start(bookinfo())
	labels := map[string]string{"app": "client"}
	a := h.connect(sidecarNode(clientIP, "client-0", "default", labels))
	b := h.connect(sidecarNode("10.1.0.10", "client-1", "default", labels))
	o := h.connect(sidecarNode("10.2.0.1", "sleep-0", "other", map[string]string{"app": "sleep"}))
	for _, c := range []*client{a, b, o} {
		c.syncFull()
	}

	ra, rb, ro := a.state(RDS), b.state(RDS), o.state(RDS)
	if ra.version != rb.version {
		t.Errorf("same namespace and labels: RDS versions differ: %s vs %s", ra.version, rb.version)
	}
	if !slices.Equal(sortedKeys(ra.resources), sortedKeys(rb.resources)) {
		t.Fatalf("same namespace and labels: route tables %v vs %v", sortedKeys(ra.resources), sortedKeys(rb.resources))
	}
	for name, any := range ra.resources {
		if !bytes.Equal(any.GetValue(), rb.resources[name].GetValue()) {
			t.Errorf("route table %s: bytes differ between two proxies with the same namespace and labels", name)
		}
	}

	if ro.version == ra.version {
		t.Errorf("other namespace: RDS version %s equals the default namespace's", ro.version)
	}
	if bytes.Equal(ro.resources["9080"].GetValue(), ra.resources["9080"].GetValue()) {
		t.Error("route table 9080 is the same for a proxy in another namespace")
	}
	reviewsDomains := func(c *client) []string {
		rc := c.resource(RDS, "9080").(*routev3.RouteConfiguration)
		for _, vh := range rc.GetVirtualHosts() {
			if strings.HasPrefix(vh.GetName(), "reviews.default.svc.cluster.local:") {
				return vh.GetDomains()
			}
		}
		t.Fatalf("%s: no reviews virtual host in route table 9080", c.node.GetId())
		return nil
	}
	if d := reviewsDomains(a); !slices.Contains(d, "reviews") || slices.Contains(d, "reviews:9080") {
		t.Errorf("default namespace: reviews domains %v, want the short name and no name:port (the table ignores ports)", d)
	}
	if d := reviewsDomains(o); slices.Contains(d, "reviews") || !slices.Contains(d, "reviews.default") {
		t.Errorf("other namespace: reviews domains %v, want reviews.default and no short name", d)
	}
	expectConfig(t, o, h.snap)

	// Outbound clusters are the same bytes for everyone.
	for _, c := range []*client{b, o} {
		for name, any := range a.state(CDS).resources {
			if !strings.HasPrefix(name, "outbound|") {
				continue
			}
			if !bytes.Equal(any.GetValue(), c.state(CDS).resources[name].GetValue()) {
				t.Errorf("%s: cluster %s differs from %s's", c.node.GetId(), name, a.node.GetId())
			}
		}
	}
}
