// Package memtrim gives memory that a burst needed back to the operating
// system once the process is quiet again.
//
// A control plane's heap is spiky: a fleet connecting at once, or a change
// pushed to every proxy, allocates a lot in a short time, and then almost
// nothing. The Go runtime collects only as allocation reaches its next goal
// (twice the live heap by default), so the burst's garbage stays in the heap,
// and resident, until enough new allocation comes along, which in a quiet
// mesh can take minutes. After 1,000 proxies connected to the 1,000-service
// mesh, mizzen held 102 MB of heap objects of which 50 MB were live. Once the
// heap has been quiet for an interval, one collection and a scavenge make the
// resident size follow what the proxies really cost.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options tune Run; the zero value is usable.
type Options struct {
	// Interval between checks (default 5 s).
	Interval time.Duration
	// MinReclaim is the least memory worth a forced collection (default 32 MiB).
	MinReclaim uint64
	// Logger gets a debug line per trim; nil: none.
	Logger *slog.Logger
}

// Stats are the heap figures a check looks at.
type Stats struct {
	// Objects is heap memory holding objects, garbage not yet collected included.
	Objects uint64
	// Live is the heap found live by the last collection.
	Live uint64
	// Free is heap memory that is free and still resident.
	Free uint64
}

// Reclaimable is what a collection and a scavenge would give back: the
// garbage and the free heap.
func (s Stats) Reclaimable() uint64 {
	var garbage uint64
	if s.Objects > s.Live {
		garbage = s.Objects - s.Live
	}
	return garbage + s.Free
}

// Worth reports whether trimming now pays: prev is the previous check's
// figures. The heap must have been quiet since (objects within a quarter of
// the floor: a busy heap is collected by the runtime anyway, and soon), and
// the reclaimable memory at least the floor and a quarter of the live heap.
func (s Stats) Worth(prev Stats, minReclaim uint64) bool {
	diff := max(s.Objects, prev.Objects) - min(s.Objects, prev.Objects)
	r := s.Reclaimable()
	return diff < minReclaim/4 && r >= minReclaim && r > s.Live/4
}

// Read returns the current heap figures.
func Read() Stats {
	v := readUint64s("/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes", "/memory/classes/heap/free:bytes")
	return Stats{Objects: v[0], Live: v[1], Free: v[2]}
}

// readUint64s reads runtime metrics of kind uint64 (0 for any other).
func readUint64s(names ...string) []uint64 {
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	metrics.Read(samples)
	out := make([]uint64, len(names))
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			out[i] = s.Value.Uint64()
		}
	}
	return out
}

// Run checks the heap every Interval until ctx is done and returns memory to
// the OS (debug.FreeOSMemory: one collection, then everything free is
// released) when Stats.Worth says so. After a trim the next checks wait six
// intervals (30 s by default), so a heap that keeps swinging costs at most
// one extra collection that often.
func Run(ctx context.Context, o Options) {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.MinReclaim == 0 {
		o.MinReclaim = 32 << 20
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	skip := 0
	prev := Read()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := Read()
		if skip > 0 {
			skip--
			prev = cur
			continue
		}
		worth := cur.Worth(prev, o.MinReclaim)
		prev = cur
		if !worth {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		skip = 6
		prev = Read()
		if o.Logger != nil {
			o.Logger.Debug("returned unused heap to the OS", "objects_before", cur.Objects, "live_before", cur.Live,
				"free_before", cur.Free, "objects_after", prev.Objects, "free_after", prev.Free, "took", time.Since(start))
		}
	}
}

// GCPercent is the GOGC mizzen runs with unless the environment sets one.
// The runtime's default (100) lets the heap grow to twice the live heap
// between collections; a change pushed to every proxy allocates tens of MB
// at once, so at 1,000 proxies 50 took the RSS peak of the Kubernetes
// benchmark from 276 to 234 MiB for about 15% more CPU per VirtualService
// change — memory, not CPU, is what a control plane next to its proxies
// runs short of.
const GCPercent = 50

// ApplyGCPercent sets GCPercent unless getenv("GOGC") is set (the
// operator's choice wins), and returns the previous setting.
func ApplyGCPercent(getenv func(string) string) (prev int, applied bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return debug.SetGCPercent(GCPercent), true
}
