// Package debounce merges bursts of source events into one update: both
// sources (a watched directory, informers) see many events for one change.
package debounce

import "time"

// Burst fires C once a burst of Add calls has been quiet for Quiet, but never
// later than Max after the burst's first event, so a steady stream of events
// cannot starve updates. It is used from one goroutine.
type Burst struct {
	quiet, max time.Duration
	timer      *time.Timer
	pending    bool
	start      time.Time
}

// New returns a stopped Burst; call Stop when done.
func New(quiet, max time.Duration) *Burst {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Burst{quiet: quiet, max: max, timer: t}
}

// Add records an event and (re)arms the timer.
func (b *Burst) Add() {
	now := time.Now()
	if !b.pending {
		b.pending, b.start = true, now
	}
	b.timer.Reset(max(0, min(b.quiet, b.start.Add(b.max).Sub(now))))
}

// C fires when the burst is over; the receiver must then call Fired.
func (b *Burst) C() <-chan time.Time { return b.timer.C }

// Fired ends the burst, so the next Add starts a new one.
func (b *Burst) Fired() { b.pending = false }

// Stop releases the timer.
func (b *Burst) Stop() { b.timer.Stop() }
