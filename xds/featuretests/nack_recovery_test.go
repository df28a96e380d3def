package featuretests

import (
	"testing"

	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// After a NACK the bad object is removed, so the config is again exactly what
// the proxy held before it: nothing new is sent (SotW: the proxy's own request
// names that version), yet /debug/syncz must not keep the type NACKED.
func TestNACKThenRevertIsSynced(t *testing.T) {
	h, base, c := syncedClient(t)
	good := c.state(RDS).version

	h.update(withVirtualServices(base, reviewsTo("v2")))
	bad := c.expect(RDS)
	c.nack(bad, "route 9080: pretend Envoy rejected this")
	eventually(t, "rds is NACKED", func() bool {
		st, _ := h.syncStatus(c.node.GetId())
		return st.Types["rds"].State == "NACKED"
	})

	snap := h.update(base)
	// Whatever the server sends (or not), the client applies and ACKs it.
	for {
		resp, err := c.tryRecv(quiet)
		if err != nil {
			break
		}
		c.handle(resp)
	}
	expectConfig(t, c, snap)
	if v := c.state(RDS).version; v != good {
		t.Errorf("client holds RDS %s, want the good version %s", v, good)
	}
	eventually(t, "rds is SYNCED again, without the old NACK", func() bool {
		st, _ := h.syncStatus(c.node.GetId())
		rds := st.Types["rds"]
		return rds.State == "SYNCED" && rds.NackMessage == "" && rds.Current == good && rds.Acked == good
	})
	if got := h.metricWith("pilot_xds_rds_reject", "node", c.node.GetId()); got != 0 {
		t.Errorf("pilot_xds_rds_reject still set for the proxy: %v", got)
	}

	// And a later change still flows and is ACKed as usual.
	next := h.update(withVirtualServices(base, reviewsTo("v3")))
	c.handle(c.expect(RDS))
	c.expectNone(quiet)
	expectConfig(t, c, next)
	st, _ := h.syncStatus(c.node.GetId())
	if st.Types["rds"].State != "SYNCED" {
		t.Errorf("rds after a later change = %+v, want SYNCED", st.Types["rds"])
	}
}

// The same on a delta stream: a NACK, then the bad object removed.
func TestDeltaNACKThenRevertIsSynced(t *testing.T) {
	h, base, c := syncedDeltaClient(t)

	h.update(withVirtualServices(base, reviewsTo("v2")))
	bad := c.expect(RDS)
	c.nack(bad, "Error adding/updating route configuration 9080: (simulated)")
	eventually(t, "rds is NACKED", func() bool {
		st, _ := h.syncStatus(c.node.GetId())
		return st.Types["rds"].State == "NACKED"
	})

	snap := h.update(withVirtualServices(base, base.VirtualServices...))
	for {
		resp, err := c.tryRecv(quiet)
		if err != nil {
			break
		}
		c.handle(resp)
	}
	expectConfigOf(t, c.node, c.config(), snap)
	eventually(t, "rds is SYNCED again, without the old NACK", func() bool {
		st, _ := h.syncStatus(c.node.GetId())
		rds := st.Types["rds"]
		return rds.State == "SYNCED" && rds.NackMessage == ""
	})

	next := h.update(withVirtualServices(base, []*networking.VirtualService{reviewsTo("v3")}...))
	c.handle(c.expect(RDS))
	c.expectNone(quiet)
	expectConfigOf(t, c.node, c.config(), next)
	st, _ := h.syncStatus(c.node.GetId())
	if st.Types["rds"].State != "SYNCED" {
		t.Errorf("rds after a later change = %+v, want SYNCED", st.Types["rds"])
	}
}
