package loadclient

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/internal/xdstest"
)

func anys(t *testing.T, rs map[string]types.Resource) []*anypb.Any {
	t.Helper()
	var out []*anypb.Any
	for _, r := range rs {
		a, err := anypb.New(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestDecodeNames(t *testing.T) {
	snap, err := xdstest.Snapshot("1", 3)
	if err != nil {
		t.Fatal(err)
	}
	cds := anys(t, snap.GetResources(TypeCDS))
	// A TTL/heartbeat-style wrapped resource must be unwrapped.
	wrapped, err := anypb.New(&discovery.Resource{Name: "x", Resource: cds[0]})
	if err != nil {
		t.Fatal(err)
	}
	cds[0] = wrapped
	got, err := EDSClusterNames(cds)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{xdstest.EDSName(0), xdstest.EDSName(1), xdstest.EDSName(2)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("EDS names %v, want %v", got, want)
	}

	lds := anys(t, snap.GetResources(TypeLDS))
	got, err = RDSRouteNames(lds)
	if err != nil || !slices.Equal(got, []string{xdstest.RouteName}) {
		t.Errorf("RDS names %v (%v), want [80]", got, err)
	}

	// Garbage is reported but does not hide the good resources.
	bad := &anypb.Any{TypeUrl: TypeCDS, Value: []byte{0xff, 0xff}}
	got, err = EDSClusterNames(append(cds, bad))
	if err == nil || len(got) != 3 {
		t.Errorf("with a bad resource: %v, %v", got, err)
	}
}

func TestParseStat(t *testing.T) {
	// comm with spaces and parentheses; utime=1500 stime=250.
	stat := "4242 (my (weird) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 1500 250 0 0 20 0 12 0 100 1000000 2000 18446744073709551615"
	got, err := ParseStatCPUTicks(stat)
	if err != nil || got != 1750 {
		t.Fatalf("got %d, %v; want 1750", got, err)
	}
	if _, err := ParseStatCPUTicks("garbage"); err == nil {
		t.Error("no error for garbage")
	}
	rss, hwm := ParseStatusMemory("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n")
	if rss != 1024*1024 || hwm != 2048*1024 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	if tck := ClockTicks(); tck <= 0 || tck > 10000 {
		t.Errorf("clock ticks %v", tck)
	}
}

func TestProcSamplerSelf(t *testing.T) {
	s, err := StartProcSampler(context.Background(), os.Getpid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn a little CPU
	}
	st := s.Stop()
	if st.RSSPeak == 0 || st.RSSFinal == 0 || st.VmHWM == 0 || st.Samples < 2 || st.CPUSeconds < 0 || st.Exited {
		t.Errorf("stats %+v", st)
	}
	if _, err := StartProcSampler(context.Background(), 1<<30, 0); err == nil {
		t.Error("no error for a missing pid")
	}
}

func TestTriggers(t *testing.T) {
	dir := t.TempDir()
	a, b, target := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "mesh", "vs.yaml")
	if err := os.Mkdir(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(a, []byte("A\n"), 0o644)
	_ = os.WriteFile(b, []byte("B\n"), 0o644)
	ft, err := NewFileToggler(target, a, b)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[int]string{1: "A\n", 2: "B\n", 3: "A\n"} {
		if err := ft.Trigger(k)(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(target); string(got) != want {
			t.Errorf("change %d wrote %q, want %q", k, got, want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	if _, err := NewFileToggler(target, a, a); err == nil {
		t.Error("identical variants accepted")
	}

	out := filepath.Join(dir, "cmd.out")
	if err := CommandTrigger(`echo "$XDSLOAD_CHANGE $XDSLOAD_VARIANT" > `+out, 4)(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); strings.TrimSpace(string(got)) != "4 b" {
		t.Errorf("command saw %q", got)
	}
	if err := CommandTrigger("echo boom >&2; exit 3", 1)(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failing command: %v", err)
	}
}
