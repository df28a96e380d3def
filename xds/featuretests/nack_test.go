package featuretests

import (
	"slices"
	"testing"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

func withVirtualServices(in *model.Inputs, vss ...*networking.VirtualService) *model.Inputs {
	out := *in
	out.VirtualServices = slices.Clone(vss)
	return &out
}

// A NACKed route table is not sent again; the reject is counted and shown in
// the sync status; the next change that produces a new version is sent.
func TestNACKedVersionIsNotResent(t *testing.T) {
	h, base, c := syncedClient(t)
	good := c.state(RDS).version

	// reviews now goes to v2: only route table 9080 changes.
	h.update(withVirtualServices(base, reviewsTo("v2")))
	bad := c.expect(RDS)
	if bad.GetVersionInfo() == good {
		t.Fatalf("RDS update carries the old version %s", good)
	}
	const msg = "route 9080: pretend Envoy rejected this"
	c.nack(bad, msg)
	eventually(t, "the NACK is counted", func() bool { return h.metric("pilot_total_xds_rejects", "rds") == 1 })

	// The server must not answer the NACK with the same version again. (It
	// decides while handling the NACK, so a resend would already be on its way.)
	c.expectNone(quiet)

	if got := h.metric("pilot_total_xds_rejects", "rds"); got != 1 {
		t.Errorf(`pilot_total_xds_rejects{type="rds"} = %v, want 1`, got)
	}
	for _, typ := range []string{"cds", "eds", "lds"} {
		if got := h.metric("pilot_total_xds_rejects", typ); got != 0 {
			t.Errorf(`pilot_total_xds_rejects{type=%q} = %v, want 0`, typ, got)
		}
	}
	st, ok := h.syncStatus(c.node.GetId())
	if !ok {
		t.Fatal("proxy missing from SyncStatus")
	}
	rds := st.Types["rds"]
	if rds.State != "NACKED" || rds.NackMessage != msg || rds.Sent != bad.GetVersionInfo() || rds.Acked != good || rds.Nacks != 1 {
		t.Errorf("rds sync status = %+v, want NACKED, message %q, sent %s, acked %s, 1 NACK", rds, msg, bad.GetVersionInfo(), good)
	}
	for _, typ := range []string{"cds", "eds", "lds"} {
		if st.Types[typ].State != "SYNCED" {
			t.Errorf("%s sync status = %+v, want SYNCED", typ, st.Types[typ])
		}
	}

	// A fix (here: the route goes back to v1 with a different name) is a new version: sent.
	fixed := reviewsTo("v1")
	fixed.Spec.Http[0].Name = "fixed"
	snap := h.update(withVirtualServices(base, fixed))
	next := c.expect(RDS)
	if v := next.GetVersionInfo(); v == bad.GetVersionInfo() || v == good {
		t.Fatalf("RDS after the fix carries version %s (good %s, rejected %s)", v, good, bad.GetVersionInfo())
	}
	c.handle(next)
	c.expectNone(quiet)
	expectConfig(t, c, snap)
	eventually(t, "rds is SYNCED again", func() bool {
		st, _ := h.syncStatus(c.node.GetId())
		return st.Types["rds"].State == "SYNCED" && st.Types["rds"].NackMessage == ""
	})
}
