package featuretests

import (
	"errors"
	"io"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/status"
)

// A proxy whose node ID is not an Istio node ID is refused: its stream ends with
// an error naming the problem, and it never shows up as connected. Proxies
// connected before and after are unaffected.
func TestMalformedNodeIDIsRefused(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	good := h.connect(clientNode())
	good.syncFull()

	good2 := clientNode()
	for _, tc := range []struct {
		name, id, wantErr string
	}{
		{"no fields", "envoy-1", "want 4 fields"},
		{"three fields", "sidecar~10.1.0.7~web-0.default", "want 4 fields"},
		{"unknown proxy type", "waypoint~10.1.0.7~web-0.default~default.svc.cluster.local", "neither sidecar nor router"},
		{"no node at all", "", "no node ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &core.Node{Id: tc.id, Metadata: good2.GetMetadata()}
			if tc.id == "" {
				n = nil
			}
			bad := connect(t, h.addr, n)
			// One request only: the server may close the stream right after it.
			bad.subscribe(CDS)
			resp, err := bad.tryRecv(waitTimeout)
			if err == nil {
				t.Fatalf("got a %s response; want the stream refused", short(resp.GetTypeUrl()))
			}
			if errors.Is(err, errTimeout) || errors.Is(bad.streamErr(), io.EOF) || bad.streamErr() == nil {
				t.Fatalf("stream did not end with an error: %v", err)
			}
			if msg := status.Convert(bad.streamErr()).Message(); !strings.Contains(msg, tc.wantErr) {
				t.Errorf("stream error %q does not say %q", msg, tc.wantErr)
			}
		})
	}

	if got := len(h.srv.SyncStatus()); got != 1 {
		t.Errorf("SyncStatus lists %d proxies, want only the good one", got)
	}
	if got := h.connected(); got != 1 {
		t.Errorf("pilot_xds = %v, want 1", got)
	}

	// The good proxy still gets changes, and new good proxies still connect.
	snap := h.update(withVirtualServices(base, reviewsTo("v2")))
	good.handle(good.expect(RDS))
	good.expectNone(quiet)
	expectConfig(t, good, snap)
	other := h.connect(sidecarNode("10.1.0.10", "client-1", "default", map[string]string{"app": "client"}))
	other.syncFull()
	expectConfig(t, other, snap)
}
