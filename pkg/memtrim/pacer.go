package memtrim

import (
	"cmp"
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"
)

// Pacer moves the collection that the next endpoint push would run into to
// the quiet moment before it.
//
// On 2 cores a collection that starts during a push takes one of them for
// its mark phase (the runtime's dedicated worker) and taxes the pushing
// goroutines with assists: at 1,000 proxies an endpoint push that met one
// took twice the CPU and time of one that did not (0.14 against 0.06 CPU-s),
// and one or two of every ten changes in the Kubernetes benchmark did. Such
// a push allocates a few MB, far less than the heap's headroom, so the
// collection it meets is the one the heap was about to need anyway: the
// Pacer runs it just before, once the last push has gone quiet, if the
// headroom left would not hold another such push. The collection comes at
// most one push earlier than the runtime's would, and never while the heap
// has room.
type Pacer struct {
	// Quiet is how long after a push ends the Pacer looks (default 150 ms:
	// the proxies' ACKs are in by then).
	Quiet time.Duration
	// Idle is how often, while no push runs, the Pacer looks at the heap
	// anyway (default 1 s; negative: never). Pushes are not all that grows
	// it: a fleet's warm-up builds each proxy's config as it connects, with
	// no push at all, and left the heap a few MB short of its trigger, so
	// the first endpoint change after it met the collection (a 1,000-proxy
	// round of 190 ms against 50 for the next four). Once the heap is quiet
	// (less than betweenPushes allocated since the last look) and that close,
	// the Pacer collects, at most once between two collections of anyone
	// else's, and gives the free heap back as memtrim would (a collection
	// alone left memtrim nothing it found worth trimming: at 5,000 proxies
	// RSS settled 120 MB higher).
	Idle   time.Duration
	Logger *slog.Logger

	events chan pushEvent
	// read, collect and trim are the runtime's; tests replace them.
	read    func() pacerHeap
	collect func()
	trim    func()
}

type pushEvent struct {
	done         bool
	endpointOnly bool
}

// pacerHeap is what the Pacer reads: the heap found live by the last
// collection, the goal of the next, all bytes ever allocated and the number
// of completed collections.
type pacerHeap struct {
	live, goal, allocs, cycles uint64
}

// NewPacer returns a Pacer; run it with Run.
func NewPacer(log *slog.Logger) *Pacer {
	return &Pacer{Logger: log, events: make(chan pushEvent, 16), read: readPacerHeap, collect: runtime.GC, trim: debug.FreeOSMemory}
}

// PushStarted marks the start of a push. It never blocks.
func (p *Pacer) PushStarted() { p.send(pushEvent{}) }

// PushDone marks its end; endpointOnly says whether it changed endpoints
// only (the frequent, latency-bound kind the Pacer keeps collections out of).
func (p *Pacer) PushDone(endpointOnly bool) {
	p.send(pushEvent{done: true, endpointOnly: endpointOnly})
}

func (p *Pacer) send(e pushEvent) {
	select {
	case p.events <- e:
	default: // a burst of pushes: the Pacer loses track of one, nothing worse
	}
}

// recentPushes is how many endpoint pushes' allocations the Pacer expects
// the next one to be like (it takes the largest). Few: the first push after
// a quiet spell allocates two to four times the usual (gRPC's buffer pools
// are emptied by collections), and an expectation that stays that high
// would collect after every push.
const recentPushes = 3

// firstPush is what the Pacer expects an endpoint push to allocate before it
// has measured one: the first after a quiet spell allocated 7-19 MB at
// 1,000 proxies.
const firstPush = 16 << 20

// Run follows pushes until ctx is done.
func (p *Pacer) Run(ctx context.Context) {
	quiet := p.Quiet
	if quiet <= 0 {
		quiet = 150 * time.Millisecond
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var idleC <-chan time.Time
	if idle := cmp.Or(p.Idle, time.Second); idle > 0 {
		tick := time.NewTicker(idle)
		defer tick.Stop()
		idleC = tick.C
	}
	var (
		startAllocs  uint64
		started      bool
		waiting      bool // a push ended; the quiet timer runs
		endpointOnly bool
		recent       [recentPushes]uint64
		next         int
		// idleCycle: the collection count right after the Pacer's last idle
		// collection (none yet: no count); another waits for someone else's.
		idleCycle = ^uint64(0)
	)
	// expected is what the next endpoint push will allocate, by the last few.
	expected := func() uint64 {
		var e uint64
		for _, a := range recent {
			e = max(e, a)
		}
		return e
	}
	// The runtime starts a collection when the heap marked by the last one
	// plus what was allocated since reaches its trigger. What the last
	// collection left is read after the fact: one seen since the previous
	// look is taken to have ended right at it, which can only overestimate
	// what was allocated since.
	h := p.read()
	cycles, sinceAllocs, lastAllocs := h.cycles, h.allocs, h.allocs
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-p.events:
			if !e.done {
				if !started {
					h := p.read()
					if h.cycles != cycles {
						cycles, sinceAllocs = h.cycles, lastAllocs
					}
					startAllocs, lastAllocs, started = h.allocs, h.allocs, true
				}
				t.Stop()
				waiting = false
				continue
			}
			endpointOnly = e.endpointOnly
			waiting = true
			t.Reset(quiet)
		case <-idleC:
			if started || waiting {
				continue // the push path looks after this one
			}
			h := p.read()
			if h.cycles != cycles {
				cycles, sinceAllocs = h.cycles, lastAllocs
			}
			quietHeap := h.allocs-lastAllocs < betweenPushes
			lastAllocs = h.allocs
			if !quietHeap || h.cycles == idleCycle {
				continue
			}
			expect := uint64(firstPush)
			if next > 0 {
				expect = expected()
			}
			heap := h.live + (h.allocs - sinceAllocs)
			if heap < h.live+betweenPushes || !h.wouldMeetCollection(heap, expect) {
				continue
			}
			begin := time.Now()
			p.trim()
			after := p.read()
			cycles, sinceAllocs, lastAllocs = after.cycles, after.allocs, after.allocs
			idleCycle = after.cycles
			if p.Logger != nil {
				p.Logger.Debug("collected and trimmed while idle, before the next push would have to collect", "expect", expect,
					"heap", heap, "live", h.live, "goal", h.goal, "took", time.Since(begin))
			}
		case <-t.C:
			waiting = false
			if !started {
				continue
			}
			h := p.read()
			if h.cycles != cycles {
				cycles, sinceAllocs = h.cycles, lastAllocs
			}
			lastAllocs = h.allocs
			started = false
			if !endpointOnly {
				continue // a config push allocates a lot and collects anyway
			}
			recent[next%recentPushes] = h.allocs - startAllocs
			next++
			expect := expected()
			heap := h.live + (h.allocs - sinceAllocs)
			if !h.wouldMeetCollection(heap, expect) {
				if p.Logger != nil {
					p.Logger.Debug("no collection needed between pushes", "push_allocated", recent[(next-1)%recentPushes], "expect", expect,
						"heap", heap, "live", h.live, "goal", h.goal)
				}
				continue
			}
			begin := time.Now()
			p.collect()
			after := p.read()
			cycles, sinceAllocs, lastAllocs = after.cycles, after.allocs, after.allocs
			if p.Logger != nil {
				p.Logger.Debug("collected between pushes", "push_allocated", recent[(next-1)%recentPushes], "expect", expect,
					"heap", heap, "goal", h.goal, "took", time.Since(begin))
			}
		}
	}
}

// betweenPushes is what a change allocates besides its push, and what the
// runtime counts as allocated without it being so: the model's build of the
// change (1.5 MB at 1,000 services with the kube bench's routing), the
// informer's decoding of the object, a scrape or two, and the unused rest of
// the spans each P holds (the runtime counts a span as allocated when a P
// takes it). With 2 MiB, one push in ten of the Kubernetes benchmark still
// met a collection that started 100 ms before the Pacer's estimate said.
const betweenPushes = 6 << 20

// wouldMeetCollection reports whether the next change, whose push allocates
// expect bytes, would start a collection on heap (the marked heap and what
// was allocated since). The runtime starts one before the goal, somewhere
// past 70% of the way from the live heap to it; the Pacer takes the earliest.
func (h pacerHeap) wouldMeetCollection(heap, expect uint64) bool {
	if h.goal <= h.live || expect == 0 {
		return false
	}
	trigger := h.live + (h.goal-h.live)*7/10
	return heap+expect+betweenPushes >= trigger
}

func readPacerHeap() pacerHeap {
	v := readUint64s("/gc/heap/live:bytes", "/gc/heap/goal:bytes", "/gc/heap/allocs:bytes", "/gc/cycles/total:gc-cycles")
	return pacerHeap{live: v[0], goal: v[1], allocs: v[2], cycles: v[3]}
}
