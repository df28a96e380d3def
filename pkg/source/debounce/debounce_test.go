package debounce

import (
	"testing"
	"time"
)

func TestBurstMergesAndIsCapped(t *testing.T) {
	b := New(30*time.Millisecond, 100*time.Millisecond)
	defer b.Stop()
	start := time.Now()
	// Events every 10 ms for 300 ms: quiet never comes, the cap must fire.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case <-tick.C:
			b.Add()
			continue
		case <-b.C():
			b.Fired()
			if d := time.Since(start); d > 250*time.Millisecond {
				t.Fatalf("fired after %v, want about 100ms (the cap)", d)
			}
			return
		case <-deadline:
			t.Fatal("a steady stream of events starved the update")
		}
	}
}
