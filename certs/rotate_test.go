package certs

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNeedsRotation(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ca := newTestCA(t, Options{Clock: newFakeClock(t0)})
	chain, _, err := ca.GenerateLeaf(SpiffeID("cluster.local", "a", "b"), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ParseFirstCert(chain)
	// 2m TTL + 12s backdate = 132s lifetime; half remains at NotAfter-66s.
	due := leaf.NotAfter.Add(-66 * time.Second)
	if due != t0.Add(54*time.Second) {
		t.Fatalf("due at %v, want t0+54s", due.Sub(t0))
	}
	for _, tc := range []struct {
		at     time.Time
		jitter time.Duration
		want   bool
	}{
		{t0, 0, false},
		{due.Add(-time.Nanosecond), 0, false},
		{due, 0, true},
		{due.Add(-10 * time.Second), 10 * time.Second, true},
		{due.Add(-11 * time.Second), 10 * time.Second, false},
		{leaf.NotAfter.Add(time.Hour), 0, true},
	} {
		if got := NeedsRotation(chain, tc.at, tc.jitter); got != tc.want {
			t.Errorf("NeedsRotation at t0+%v jitter %v = %v, want %v", tc.at.Sub(t0), tc.jitter, got, tc.want)
		}
	}
	if !NeedsRotation([]byte("garbage"), t0, 0) {
		t.Error("garbage does not need rotation")
	}
}

func TestRotatorReissuesBeforeExpiry(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	ca := newTestCA(t, Options{Clock: clock})
	id := SpiffeID("cluster.local", "a", "b")

	failNext := false
	issued := make(chan Issued, 10)
	errs := make(chan error, 10)
	r := &Rotator{
		Issue: func(context.Context) (Issued, error) {
			if failNext {
				failNext = false
				return Issued{}, errors.New("apiserver down")
			}
			chain, key, err := ca.GenerateLeaf(id, 2*time.Minute)
			return Issued{chain, key}, err
		},
		OnIssue:     func(i Issued) { issued <- i },
		OnError:     func(err error) { errs <- err },
		Clock:       clock,
		JitterRatio: 0.1,
		// Maximum jitter: 10% of 132s = 13.2s, so the wait is 54s-13.2s.
		Jitter: func(n int64) int64 { return n - 1 },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	first := <-issued
	wait := <-clock.waiting
	if want := 54*time.Second - 13200*time.Millisecond + time.Nanosecond; wait != want {
		t.Fatalf("first wait %v, want %v", wait, want)
	}
	if NeedsRotation(first.CertChainPEM, clock.Now().Add(wait-time.Second), 0) {
		t.Fatal("rotating while more than half the lifetime remains and before jitter")
	}

	// Nothing happens before the deadline.
	clock.Advance(wait - time.Second)
	select {
	case <-issued:
		t.Fatal("re-issued early")
	case <-time.After(20 * time.Millisecond):
	}

	failNext = true
	clock.Advance(time.Second)
	if err := <-errs; err == nil {
		t.Fatal("no error reported")
	}
	if backoff := <-clock.waiting; backoff != time.Second {
		t.Fatalf("retry after %v, want 1s", backoff)
	}
	clock.Advance(time.Second)
	second := <-issued
	<-clock.waiting
	l1, _ := ParseFirstCert(first.CertChainPEM)
	l2, _ := ParseFirstCert(second.CertChainPEM)
	if l1.SerialNumber.Cmp(l2.SerialNumber) == 0 {
		t.Fatal("rotation kept the serial")
	}
	if !clock.Now().Before(l1.NotAfter) {
		t.Fatal("rotated only after expiry")
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}
