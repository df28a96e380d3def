package featuretests

import (
	"testing"

	"github.com/mizzenmesh/mizzen/xds"
)

// The send budget (xds/sendbudget.go) holds back large responses while others
// are unanswered, and a proxy that never answers cannot keep it: here a stuck
// proxy takes the whole (tiny) budget and never reads, and a healthy proxy
// still gets its full config, after waiting its turn.
func TestSendBudgetStuckProxyCannotStarveOthers(t *testing.T) {
	h := newHarness(t, func(o *xds.Options) { o.SendBudget = 20 << 10 })
	h.start(bigMesh(300))

	stuckNode := sidecarNode("10.1.0.50", "stuck-0", "default", map[string]string{"app": "stuck"})
	stuck := h.connect(stuckNode, neverRead())
	stuck.start()
	eventually(t, "the stuck proxy holds the send budget", func() bool { return h.gauge("mizzen_xds_send_budget_bytes") > 0 })

	c := h.connect(clientNode())
	c.syncFull()
	if w := h.gauge("mizzen_xds_send_budget_waits_total"); w < 1 {
		t.Fatalf("mizzen_xds_send_budget_waits_total = %v: the healthy proxy never waited for budget, so the test proved nothing", w)
	}
	d := h.connectDelta(sidecarNode("10.1.0.51", "delta-0", "default", map[string]string{"app": "delta"}))
	d.syncFull()
	eventually(t, "every byte of budget is given back", func() bool { return h.gauge("mizzen_xds_send_budget_bytes") == 0 })
}

// gauge reads an unlabelled gauge or counter.
func (h *harness) gauge(name string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}
