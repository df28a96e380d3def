// Package debounce merges bursts of source events into one update: both
// sources (a watched directory, informers) see many events for one change.
package debounce

import "time"

// Burst fires C once a burst of Add calls has been quiet for Quiet, but never
// later than Max after the burst's first event, so a steady stream of events
// cannot starve updates. With Leading, an event that comes after Quiet of
// calm fires at once, and what follows it within Quiet makes a burst of its
// own: a lone change (an endpoint going away) is not delayed, a burst costs
// one more update. It is used from one goroutine.
type Burst struct {
	quiet, max time.Duration
	timer      *time.Timer
	pending    bool
	start      time.Time
	// Leading: fire at once on the first event after calm.
	Leading   bool
	lastFired time.Time
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
		if b.Leading && now.Sub(b.lastFired) >= b.quiet {
			b.timer.Reset(0)
			return
		}
	}
	b.timer.Reset(max(0, min(b.quiet, b.start.Add(b.max).Sub(now))))
}

// C fires when the burst is over; the receiver must then call Fired.
func (b *Burst) C() <-chan time.Time { return b.timer.C }

// Fired ends the burst, so the next Add starts a new one.
func (b *Burst) Fired() { b.pending, b.lastFired = false, time.Now() }

// Stop releases the timer.
func (b *Burst) Stop() { b.timer.Stop() }
