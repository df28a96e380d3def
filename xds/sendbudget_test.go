package xds

import (
	"context"
	"testing"
	"time"
)

func TestSendBudgetWaitsInLine(t *testing.T) {
	b := newSendBudget(100 << 10)
	ctx := context.Background()
	a, c, d := b.stream(), b.stream(), b.stream()
	if err := a.sending(ctx, typeURLs[cdsType], 80<<10); err != nil {
		t.Fatal(err)
	}
	// c does not fit: it waits until a answers.
	got := make(chan string, 2)
	go func() { _ = c.sending(ctx, typeURLs[cdsType], 60<<10); got <- "c" }()
	waitFor(t, func() bool { _, w, _ := b.inUse(); return w == 1 })
	// Small responses never wait.
	if err := d.sending(ctx, typeURLs[edsType], 1<<10); err != nil {
		t.Fatal(err)
	}
	// A stream already holding budget is not made to wait for its next type.
	done := make(chan struct{})
	go func() { _ = a.sending(ctx, typeURLs[ldsType], 60<<10); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("a stream holding budget waited for more")
	}
	select {
	case <-got:
		t.Fatal("c went ahead while the budget was spent")
	case <-time.After(50 * time.Millisecond):
	}
	a.answered(typeURLs[cdsType])
	select {
	case <-got:
		t.Fatal("c went ahead while a still held its LDS response")
	case <-time.After(50 * time.Millisecond):
	}
	a.answered(typeURLs[ldsType])
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("c did not get the budget a gave back")
	}
	if used, _, waited := b.inUse(); used != 60<<10 || waited != 1 {
		t.Fatalf("used %d waited %d, want %d and 1", used, waited, 60<<10)
	}
	c.releaseAll()
	if used, _, _ := b.inUse(); used != 0 {
		t.Fatalf("used %d after every stream gave back", used)
	}
}

func TestSendBudgetCancelledWaiterLeavesLine(t *testing.T) {
	b := newSendBudget(100 << 10)
	a, c := b.stream(), b.stream()
	if err := a.sending(context.Background(), typeURLs[cdsType], 100<<10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.sending(ctx, typeURLs[cdsType], 50<<10) }()
	waitFor(t, func() bool { _, w, _ := b.inUse(); return w == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
	a.releaseAll()
	if used, w, _ := b.inUse(); used != 0 || w != 0 {
		t.Fatalf("used %d, waiting %d after the cancelled waiter left", used, w)
	}
}

// A stream that never answers gives its budget back after budgetHold, so it
// cannot starve the others; here the hold is shortened through the timer.
func TestSendBudgetHeldTooLongIsReleased(t *testing.T) {
	b := newSendBudget(100 << 10)
	a := b.stream()
	if err := a.sending(context.Background(), typeURLs[rdsType], 100<<10); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.timer.Reset(10 * time.Millisecond)
	a.mu.Unlock()
	waitFor(t, func() bool { u, _, _ := b.inUse(); return u == 0 })
	// A late answer gives back nothing twice.
	a.answered(typeURLs[rdsType])
	if u, _, _ := b.inUse(); u != 0 {
		t.Fatalf("used %d after a late answer", u)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
