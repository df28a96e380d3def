package featuretests

import (
	"maps"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/xds"
)

// SyncStatus follows the protocol: NOT SENT, then STALE once a version is sent
// and not yet ACKed, SYNCED once the proxy ACKed the current version, and STALE
// again when a change is sent and not yet ACKed.
func TestSyncStatusTracksACKs(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	c := h.connect(clientNode())
	id := c.node.GetId()
	status := func() xds.ProxySyncStatus {
		t.Helper()
		st, ok := h.syncStatus(id)
		if !ok {
			t.Fatalf("%s missing from SyncStatus", id)
		}
		return st
	}
	states := func(st xds.ProxySyncStatus) map[string]string {
		out := map[string]string{}
		for typ, ts := range st.Types {
			out[typ] = ts.State
		}
		return out
	}
	expectStates := func(what string, want map[string]string) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for {
			got := states(status())
			if maps.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: states = %v, want %v", what, got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	c.start()
	cds := c.expect(CDS)
	lds := c.expect(LDS)
	st := status()
	if st.Type != "sidecar" || st.Namespace != "default" {
		t.Errorf("proxy type/namespace = %q/%q, want sidecar/default", st.Type, st.Namespace)
	}
	expectStates("CDS and LDS sent, nothing ACKed", map[string]string{"cds": "STALE", "lds": "STALE", "eds": "NOT SENT", "rds": "NOT SENT"})
	if got := st.Types["cds"]; got.Sent != cds.GetVersionInfo() || got.Acked != "" || got.Current != cds.GetVersionInfo() || got.Resources != len(cds.GetResources()) {
		t.Errorf("cds status before the ACK = %+v (response version %s, %d resources)", got, cds.GetVersionInfo(), len(cds.GetResources()))
	}

	c.handle(cds) // ACK, subscribe to endpoints
	eds := c.expect(EDS)
	expectStates("CDS ACKed, EDS sent", map[string]string{"cds": "SYNCED", "eds": "STALE", "lds": "STALE", "rds": "NOT SENT"})

	c.handle(lds) // ACK, subscribe to routes
	rds := c.expect(RDS)
	expectStates("CDS and LDS ACKed, EDS and RDS sent", map[string]string{"cds": "SYNCED", "eds": "STALE", "lds": "SYNCED", "rds": "STALE"})

	c.handle(eds)
	c.handle(rds)
	all := map[string]string{"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}
	expectStates("everything ACKed", all)
	for typ, ts := range status().Types {
		if ts.Current != ts.Sent || ts.Sent != ts.Acked || ts.Acks < 1 || ts.Nacks != 0 {
			t.Errorf("%s status when synced = %+v", typ, ts)
		}
	}

	// A change: route table 9080 is sent; until the ACK, rds is STALE.
	h.update(withVirtualServices(base, reviewsTo("v2")))
	next := c.expect(RDS)
	expectStates("new routes sent, not ACKed", map[string]string{"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "STALE"})
	if got := status().Types["rds"]; got.Sent != next.GetVersionInfo() || got.Acked != rds.GetVersionInfo() {
		t.Errorf("rds status before the ACK = %+v, want sent %s, acked %s", got, next.GetVersionInfo(), rds.GetVersionInfo())
	}
	c.handle(next)
	expectStates("new routes ACKed", all)
}
