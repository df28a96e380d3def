package featuretests

import (
	"testing"
)

// connected reads pilot_xds for the Istio version the test nodes carry.
func (h *harness) connected() float64 { return h.metricWith("pilot_xds", "version", "1.31.1") }

// A proxy that disconnects and reconnects with the same node ID gets its full
// config again on the new stream, including what changed while it was away.
func TestReconnectGetsFullConfig(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	first := h.connect(clientNode())
	first.syncFull()
	eventually(t, "pilot_xds counts the proxy", func() bool { return h.connected() == 1 })

	first.close()
	eventually(t, "the server saw the stream close", func() bool {
		_, ok := h.syncStatus(first.node.GetId())
		return !ok && h.connected() == 0
	})

	// A change while it is away.
	snap := h.update(withVirtualServices(base, reviewsTo("v2")))

	second := h.connect(clientNode())
	second.syncFull()
	second.expectNone(quiet)
	expectConfig(t, second, snap)
	eventually(t, "pilot_xds counts the proxy again", func() bool { return h.connected() == 1 })
	expectAllSynced(t, h, second.node.GetId())
}

// Envoy may open its new stream before the server noticed the old one is gone;
// the new stream still gets full config, and later changes go to it.
func TestReconnectWhileOldStreamStillOpen(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	old := h.connect(clientNode())
	old.syncFull()

	fresh := h.connect(clientNode())
	fresh.syncFull()
	expectConfig(t, fresh, h.snap)
	eventually(t, "pilot_xds counts both streams", func() bool { return h.connected() == 2 })

	old.close()
	eventually(t, "the server saw the old stream close", func() bool { return h.connected() == 1 })
	if _, ok := h.syncStatus(fresh.node.GetId()); !ok {
		t.Fatal("closing the old stream dropped the proxy that is still connected")
	}

	snap := h.update(withVirtualServices(base, reviewsTo("v2")))
	fresh.handle(fresh.expect(RDS))
	fresh.expectNone(quiet)
	expectConfig(t, fresh, snap)
	expectAllSynced(t, h, fresh.node.GetId())
}

func expectAllSynced(t *testing.T, h *harness, id string) {
	t.Helper()
	eventually(t, id+" is SYNCED for all four types", func() bool {
		st, ok := h.syncStatus(id)
		if !ok {
			return false
		}
		for _, typ := range []string{"cds", "eds", "lds", "rds"} {
			if st.Types[typ].State != "SYNCED" {
				return false
			}
		}
		return true
	})
}
