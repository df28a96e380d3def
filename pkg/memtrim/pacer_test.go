package memtrim

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestWouldMeetCollection(t *testing.T) {
	const mib = 1 << 20
	// Live 100 MiB, goal 150 MiB: the runtime may start as early as 135 MiB.
	h := pacerHeap{live: 100 * mib, goal: 150 * mib}
	for _, c := range []struct {
		heap, expect uint64
		want         bool
	}{
		{100 * mib, 5 * mib, false}, // just collected: room for several changes
		{123 * mib, 5 * mib, false}, // 12 MiB left for a change of 5 + 6 MiB
		{125 * mib, 5 * mib, true},  // 10 MiB left: the change would start one
		{140 * mib, 1 * mib, true},  // past the earliest trigger
		{140 * mib, 0, false},       // no push measured yet
	} {
		if got := h.wouldMeetCollection(c.heap, c.expect); got != c.want {
			t.Errorf("heap %d MiB, pushes of %d MiB: %v, want %v", c.heap/mib, c.expect/mib, got, c.want)
		}
	}
	if (pacerHeap{live: 100, goal: 100}).wouldMeetCollection(100, 10) {
		t.Error("a heap without a goal above its live size (GOGC=off) was collected")
	}
}

// fakeHeap is a heap the test moves by hand.
type fakeHeap struct {
	mu        sync.Mutex
	h         pacerHeap
	collected chan struct{}
}

func (f *fakeHeap) read() pacerHeap { f.mu.Lock(); defer f.mu.Unlock(); return f.h }

func (f *fakeHeap) alloc(n uint64) {
	f.mu.Lock()
	f.h.allocs += n
	f.mu.Unlock()
}

// collectedWithin reports whether the Pacer collected within d.
func (f *fakeHeap) collectedWithin(d time.Duration) bool {
	select {
	case <-f.collected:
		return true
	case <-time.After(d):
		return false
	}
}

// runPacer runs p until the test ends.
func runPacer(t *testing.T, p *Pacer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (f *fakeHeap) collect() {
	f.mu.Lock()
	f.h.cycles++
	f.mu.Unlock()
	f.collected <- struct{}{}
}

// After an endpoint push that leaves too little room for the next one, the
// Pacer collects once the push is quiet; with room, or after a config push,
// it does not.
func TestPacerCollectsBeforeTheNextPushWouldHaveTo(t *testing.T) {
	const mib = 1 << 20
	f := &fakeHeap{h: pacerHeap{live: 100 * mib, goal: 150 * mib}, collected: make(chan struct{}, 4)}
	p := NewPacer(nil)
	p.Quiet = 10 * time.Millisecond
	p.Idle = -1 // TestPacerCollectsWhenIdleNearTheTrigger
	p.read, p.collect, p.trim = f.read, f.collect, nil
	runPacer(t, p)

	push := func(endpointOnly bool, n uint64) {
		p.PushStarted()
		time.Sleep(5 * time.Millisecond) // the Pacer reads the start first
		f.alloc(n)
		p.PushDone(endpointOnly)
	}

	push(true, 5*mib) // 105 of an earliest trigger at 135: room for many
	if f.collectedWithin(200 * time.Millisecond) {
		t.Fatal("collected with 30 MiB of room for 5 MiB pushes")
	}
	push(false, 20*mib) // a config push: the runtime collects during those anyway
	if f.collectedWithin(200 * time.Millisecond) {
		t.Fatal("collected after a config push")
	}
	push(true, 6*mib) // 131: the next push would start a collection
	if !f.collectedWithin(2 * time.Second) {
		t.Fatal("not collected with 4 MiB of room for 6 MiB pushes")
	}

	// After it the heap is the live one again: room for pushes.
	push(true, 6*mib)
	if f.collectedWithin(200 * time.Millisecond) {
		t.Fatal("collected again right after a collection")
	}
	// A collection the runtime ran on its own (during a push) is noticed too.
	f.mu.Lock()
	f.h.cycles++
	f.mu.Unlock()
	push(true, 6*mib)
	if f.collectedWithin(200 * time.Millisecond) {
		t.Fatal("collected although the runtime just had")
	}
}

// With no push at all (a fleet's warm-up builds each proxy as it connects),
// the Pacer still collects once the heap is quiet and so close to its trigger
// that a first endpoint push would start a collection; not while allocation
// goes on, and not twice in a row.
func TestPacerCollectsWhenIdleNearTheTrigger(t *testing.T) {
	const mib = 1 << 20
	f := &fakeHeap{h: pacerHeap{live: 100 * mib, goal: 150 * mib}, collected: make(chan struct{}, 4)}
	p := NewPacer(nil)
	p.Idle = 10 * time.Millisecond
	p.read, p.collect, p.trim = f.read, f.collect, f.collect
	runPacer(t, p)

	f.alloc(10 * mib) // 110 of an earliest trigger at 135: room for a 16 MiB first push
	if f.collectedWithin(100 * time.Millisecond) {
		t.Fatal("collected with room for a first push")
	}
	// A warm-up: the heap passes the point, but allocation goes on.
	stop := time.After(100 * time.Millisecond)
	busy := true
	for busy {
		select {
		case <-stop:
			busy = false
		case <-f.collected:
			t.Fatal("collected while the heap was busy")
		case <-time.After(2 * time.Millisecond):
			f.alloc(8 * mib) // several times betweenPushes per tick
		}
	}
	if !f.collectedWithin(2 * time.Second) {
		t.Fatal("not collected once the heap was quiet near its trigger")
	}
	// The fake's live heap is unchanged: the heap is back at it, with room.
	f.alloc(20 * mib)
	if f.collectedWithin(100 * time.Millisecond) {
		t.Fatal("collected twice with no collection of the runtime's between")
	}
	f.mu.Lock()
	f.h.cycles++ // the runtime's own
	f.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	f.alloc(5 * mib) // 100 + 5 since the runtime's: room
	if f.collectedWithin(100 * time.Millisecond) {
		t.Fatal("collected right after the runtime did")
	}
	f.alloc(5 * mib) // 110: still room for 16 + 6
	f.alloc(5 * mib) // 115: no more
	if !f.collectedWithin(2 * time.Second) {
		t.Fatal("not collected near the trigger after the runtime's collection")
	}
}
