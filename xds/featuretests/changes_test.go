package featuretests

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
)

type changeRecord struct {
	ID      uint64              `json:"id"`
	Trigger string              `json:"trigger"`
	Changed map[string][]string `json:"changed"`
	Counts  map[string]int      `json:"counts"`
	Proxies map[string]struct {
		State         string   `json:"state"`
		Types         []string `json:"types"`
		LatencyNS     int64    `json:"latency_ns"`
		NackMessage   string   `json:"nack_message"`
		NackResources []string `json:"nack_resources"`
	} `json:"proxies"`
}

func (h *harness) change(id uint64) (changeRecord, error) {
	rec := httptest.NewRecorder()
	h.srv.DebugHandler().ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/debug/changes?id=%d", id), nil))
	if rec.Code != 200 {
		return changeRecord{}, fmt.Errorf("/debug/changes?id=%d: %d %s", id, rec.Code, rec.Body.String())
	}
	var out []changeRecord
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out) != 1 {
		return changeRecord{}, fmt.Errorf("/debug/changes?id=%d: %v (%d records)", id, err, len(out))
	}
	return out[0], nil
}

// Every change is traced per proxy: PENDING until the proxy ACKs every type
// the change gave it, then ACKED with the latency; a NACK shows Envoy's message.
func TestChangesAreTracedPerProxy(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	good := h.connect(clientNode())
	good.syncFull()
	bad := h.connect(sidecarNode("10.1.0.77", "client-1", "default", map[string]string{"app": "client"}))
	bad.syncFull()
	good.expectNone(quiet)

	snap := h.update(withVirtualServices(base, reviewsTo("v2")))
	rec, err := h.change(snap.Version)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Trigger != "config" || rec.Counts["PENDING"] != 2 {
		t.Fatalf("before any ACK: %+v, want 2 PENDING config change", rec)
	}
	if p := rec.Proxies[good.node.GetId()]; len(p.Types) != 1 || p.Types[0] != "rds" {
		t.Errorf("the change touches %v of %s, want [rds]", p.Types, good.node.GetId())
	}

	good.handle(good.expect(RDS))
	const msg = "pretend Envoy rejected route 9080"
	bad.nack(bad.expect(RDS), msg)
	eventually(t, "one ACKED, one NACKED", func() bool {
		rec, err = h.change(snap.Version)
		return err == nil && rec.Counts["ACKED"] == 1 && rec.Counts["NACKED"] == 1
	})
	if p := rec.Proxies[good.node.GetId()]; p.State != "ACKED" || p.LatencyNS <= 0 {
		t.Errorf("%s: %+v, want ACKED with a latency", good.node.GetId(), p)
	}
	if p := rec.Proxies[bad.node.GetId()]; p.State != "NACKED" || p.NackMessage != msg {
		t.Errorf("%s: %+v, want NACKED with %q", bad.node.GetId(), p, msg)
	}
	if got := h.metricWith("mizzen_change_last_proxies", "state", "NACKED"); got != 1 {
		t.Errorf(`mizzen_change_last_proxies{state="NACKED"} = %v, want 1`, got)
	}
}
