package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// configErrorRow is one row of /debug/push_status's config_error_list.
type configErrorRow struct {
	Level, Code, Kind, Namespace, Name, Field, Message string
}

func pushStatusErrors(ctx context.Context, m *rig.Mizzen) ([]configErrorRow, error) {
	body, err := m.Get(ctx, "/debug/push_status")
	if err != nil {
		return nil, err
	}
	var st struct {
		List []configErrorRow `json:"config_error_list"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("parsing /debug/push_status: %v", err)
	}
	return st.List, nil
}

// duplicateReported checks that /debug/push_status names the duplicate of
// VirtualService default/reviews-edge in file, and that it was counted.
func duplicateReported(m *rig.Mizzen, file string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		rows, err := pushStatusErrors(ctx, m)
		if err != nil {
			return err
		}
		found := false
		for _, r := range rows {
			if r.Code == "Duplicate" && r.Kind == "VirtualService" && r.Namespace == "default" && r.Name == "reviews-edge" &&
				strings.HasPrefix(r.Field, file+" doc 1") {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("/debug/push_status does not name the duplicate in %s: %+v", file, rows)
		}
		ms, err := m.Metrics(ctx)
		if err != nil {
			return err
		}
		if n := ms[`mizzen_config_errors_total{code="Duplicate",kind="VirtualService"}`]; n < 1 {
			return fmt.Errorf(`mizzen_config_errors_total{code="Duplicate",kind="VirtualService"} = %v`, n)
		}
		return nil
	}
}

// steadyVersion sends n requests for reviews.example.com through the gateway
// and fails unless every one is answered by reviews of version.
func steadyVersion(t *testing.T, b *rig.BookinfoEnv, n int, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	check := expectVersion(b, nil, version)
	for i := range n {
		if err := check(ctx); err != nil {
			t.Fatalf("request %d of %d: %v", i+1, n, err)
		}
	}
}

// A new file that sorts first and redefines the VirtualService a gateway
// serves does not take the route over: it is reported (log, metric,
// /debug/push_status) and skipped, edits of the original keep reaching the
// real gateway Envoy, nothing is NACKed; removing the original hands the
// object to the other definition. After a restart with both files present
// the older file's definition is served and the other reported.
func TestFileDuplicateDoesNotTakeOver(t *testing.T) {
	b := rig.Bookinfo(t)
	b.WriteConfig(t, "reviews-edge.yaml", reviewsVS("reviews-edge", allTo("v1")))
	eventually(t, 10*time.Second, "reviews-edge routes to v1", expectVersion(b, nil, "v1"))

	// The intruder: same kind, namespace and name, in a file that sorts first.
	b.WriteConfig(t, "0.yaml", reviewsVS("reviews-edge", allTo("v2")))
	intruder := filepath.Join(b.Dir, "0.yaml")
	eventually(t, 10*time.Second, "the duplicate reported", duplicateReported(b.Mizzen, intruder))
	steadyVersion(t, b, 50, "v1")

	// Edits of the original keep flowing.
	for _, v := range []string{"v3", "v2", "v1"} {
		b.WriteConfig(t, "reviews-edge.yaml", reviewsVS("reviews-edge", allTo(v)))
		eventually(t, 10*time.Second, "the edit of the original ("+v+") served", expectVersion(b, nil, v))
		steadyVersion(t, b, 20, v)
	}
	if !strings.Contains(b.Mizzen.Log(), "config object defined twice") || !strings.Contains(b.Mizzen.Log(), intruder) {
		t.Errorf("mizzen's log does not report the duplicate in %s", intruder)
	}
	expectNoNACKs(t, b)

	// The original gone, the other definition is the only one: served, and
	// no longer an error.
	b.RemoveConfig(t, "reviews-edge.yaml")
	eventually(t, 10*time.Second, "the remaining definition (v2) served", expectVersion(b, nil, "v2"))
	eventually(t, 10*time.Second, "no config error left", func(ctx context.Context) error {
		rows, err := pushStatusErrors(ctx, b.Mizzen)
		if err != nil {
			return err
		}
		if len(rows) != 0 {
			return fmt.Errorf("config errors: %+v", rows)
		}
		return nil
	})

	// Restart with both files present: there is no memory of which came
	// first, so the older file wins (modification time, then path).
	b.WriteConfig(t, "reviews-edge.yaml", reviewsVS("reviews-edge", allTo("v3")))
	eventually(t, 10*time.Second, "the returning original reported", duplicateReported(b.Mizzen, filepath.Join(b.Dir, "reviews-edge.yaml")))
	steadyVersion(t, b, 20, "v2")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(b.Dir, "reviews-edge.yaml"), old, old); err != nil {
		t.Fatal(err)
	}
	b.Mizzen.Kill()
	b.Mizzen = rig.StartMizzen(t, "--config-dir", b.Dir, "--xds-addr", b.Mizzen.XDSAddr)
	eventually(t, 20*time.Second, "after the restart the older file's definition (v3) served", expectVersion(b, nil, "v3"))
	eventually(t, 10*time.Second, "after the restart the newer file reported", duplicateReported(b.Mizzen, intruder))
	steadyVersion(t, b, 20, "v3")
	expectNoNACKs(t, b)
}

// expectNoNACKs fails if the gateway rejected any config from mizzen.
func expectNoNACKs(t *testing.T, b *rig.BookinfoEnv) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := b.Mizzen.ProxySync(ctx, rig.GatewayNodeID(b.GatewayIP))
	if err != nil {
		t.Fatal(err)
	}
	for typ, st := range ps.Types {
		if st.Nacks != 0 || st.State == "NACKED" {
			t.Errorf("gateway %s: %+v", typ, st)
		}
	}
}
