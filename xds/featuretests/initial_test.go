package featuretests

import "testing"

// A sidecar that asks for CDS and LDS (wildcard), then for the endpoints and
// route tables they name, gets exactly what translate.ForProxy builds for it.
func TestInitialConfigMatchesTranslation(t *testing.T) {
	h := newHarness(t)
	snap := h.start(bookinfo())

	c := h.connect(clientNode())
	c.syncFull()
	expectConfig(t, c, snap)

	// Spot checks that the fixture exercises what it should: subsets, inbound, TCP.
	for _, n := range []string{
		"outbound|9080|v1|reviews.default.svc.cluster.local",
		"outbound|9080|v2|reviews.default.svc.cluster.local",
		"inbound|8000||",
	} {
		if !c.has(CDS, n) {
			t.Errorf("no cluster %s", n)
		}
	}
	for _, n := range []string{"virtualOutbound", "virtualInbound", "0.0.0.0_9080", "0.0.0.0_8000", "10.96.0.13_3306"} {
		if !c.has(LDS, n) {
			t.Errorf("no listener %s", n)
		}
	}
	if got := c.state(RDS).names; len(got) != 2 || got[0] != "8000" || got[1] != "9080" {
		t.Errorf("RDS subscription = %v, want [8000 9080]", got)
	}
}
