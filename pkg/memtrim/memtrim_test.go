package memtrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestWorth(t *testing.T) {
	const mib = 1 << 20
	quiet := Stats{Objects: 200 * mib, Live: 100 * mib, Free: 10 * mib}
	for _, c := range []struct {
		name      string
		cur, prev Stats
		want      bool
	}{
		{"burst over", quiet, quiet, true},
		{"still allocating", quiet, Stats{Objects: 150 * mib, Live: 100 * mib}, false},
		{"under the floor", Stats{Objects: 20 * mib, Live: 5 * mib}, Stats{Objects: 20 * mib, Live: 5 * mib}, false},
		{"small next to the live heap", Stats{Objects: 440 * mib, Live: 400 * mib}, Stats{Objects: 440 * mib, Live: 400 * mib}, false},
	} {
		if got := c.cur.Worth(c.prev, 32*mib); got != c.want {
			t.Errorf("%s: Worth = %v, want %v", c.name, got, c.want)
		}
	}
}

var sink [][]byte

// A burst's garbage, left uncollected, is collected and returned by Run
// once the heap is quiet.
func TestRunReturnsBurst(t *testing.T) {
	runtime.GC()
	for range 128 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil // garbage now, and no allocation will make the runtime collect it
	if r := Read().Reclaimable(); r < 40<<20 {
		t.Fatalf("after a 128 MiB burst only %d bytes reclaimable", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Options{Interval: 20 * time.Millisecond}); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for Read().Reclaimable() >= 32<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if r := Read().Reclaimable(); r >= 32<<20 {
		t.Errorf("still %d bytes reclaimable after Run", r)
	}
}

func TestApplyGCPercent(t *testing.T) {
	if _, applied := ApplyGCPercent(func(string) string { return "200" }); applied {
		t.Error("GOGC set in the environment was overridden")
	}
	prev, applied := ApplyGCPercent(func(string) string { return "" })
	if !applied {
		t.Fatal("GOGC unset: GCPercent not applied")
	}
	if got := debug.SetGCPercent(prev); got != GCPercent {
		t.Errorf("GC percent %d, want %d", got, GCPercent)
	}
}
