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

func TestLeadingFiresAtOnceAfterCalm(t *testing.T) {
	b := New(50*time.Millisecond, 500*time.Millisecond)
	b.Leading = true
	defer b.Stop()
	wait := func() time.Duration {
		start := time.Now()
		select {
		case <-b.C():
			b.Fired()
			return time.Since(start)
		case <-time.After(5 * time.Second):
			t.Fatal("never fired")
			return 0
		}
	}
	b.Add()
	if d := wait(); d >= 50*time.Millisecond {
		t.Errorf("first event after calm fired after %v, want at once", d)
	}
	// Right after a fire: the next event waits for quiet, merging the burst.
	b.Add()
	b.Add()
	if d := wait(); d < 40*time.Millisecond {
		t.Errorf("event right after a fire waited %v, want the quiet period", d)
	}
	select {
	case <-b.C():
		t.Error("a merged burst fired twice")
	case <-time.After(80 * time.Millisecond):
	}
	// Calm again: at once.
	b.Add()
	if d := wait(); d >= 50*time.Millisecond {
		t.Errorf("event after calm fired after %v, want at once", d)
	}
}
