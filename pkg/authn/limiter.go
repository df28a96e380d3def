package authn

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/peer"
)

// sources is the budget of unauthenticated calls per source address: each
// TokenReview a call needs, and each call refused without one, costs a token
// of its address's bucket; a review that accepts the caller is refunded. So
// callers with a valid token are never limited, while one address sending
// garbage gets at most rate reviews a second after its burst. Buckets are
// kept for at most max addresses; a full bucket is the same as none, so those
// are dropped first, and addresses beyond max share one overflow bucket.
type sources struct {
	rate  rate.Limit
	burst int
	max   int

	mu       sync.Mutex
	m        map[netip.Prefix]*rate.Limiter
	overflow *rate.Limiter
}

func newSources(perSecond float64, burst, max int) *sources {
	return &sources{rate: rate.Limit(perSecond), burst: burst, max: max,
		m: map[netip.Prefix]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

func (s *sources) limiter(src netip.Prefix, now time.Time) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.m[src]; ok {
		return l
	}
	if len(s.m) >= s.max {
		for k, l := range s.m {
			if l.TokensAt(now) >= float64(s.burst) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			return s.overflow
		}
	}
	l := rate.NewLimiter(s.rate, s.burst)
	s.m[src] = l
	return l
}

// allow takes a token for a call refused without a review.
func (s *sources) allow(src netip.Prefix, now time.Time) bool {
	return s.limiter(src, now).AllowN(now, 1)
}

// reserve takes a token for a review, or returns nil when the address is
// over its budget; refund gives the token back.
func (s *sources) reserve(src netip.Prefix, now time.Time) (refund func()) {
	r := s.limiter(src, now).ReserveN(now, 1)
	if !r.OK() {
		return nil
	}
	if r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return nil
	}
	return func() { r.CancelAt(time.Now()) }
}

func (s *sources) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// sourceOf is the budget key of the call's peer: its IPv4 address, or its
// IPv6 /64 (one host usually holds a whole /64). Calls without an IP peer
// (Unix sockets, in-process tests) share one key.
func sourceOf(ctx context.Context) netip.Prefix {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Prefix{}
	}
	var ip netip.Addr
	switch a := p.Addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(p.Addr.String())
		if err != nil {
			return netip.Prefix{}
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	pfx, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return pfx
}

// gate bounds the TokenReviews in flight. With maxWaiting set (calls not yet
// authenticated) a caller waits for a slot at most wait, and at most
// maxWaiting of them at once; the rest are refused as overloaded at once, so
// a flood costs neither unbounded goroutines queued on the client's rate
// limiter nor the apiserver's capacity. Without it (re-checks of proven
// identities, whose number is bounded by the streams) a caller waits as long
// as its context.
type gate struct {
	slots      chan struct{}
	wait       time.Duration
	maxWaiting int

	mu      sync.Mutex
	waiting int
}

func (g *gate) enter(ctx context.Context) error {
	bounded := g.maxWaiting > 0
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	if bounded {
		g.mu.Lock()
		if g.waiting >= g.maxWaiting {
			g.mu.Unlock()
			return fail(ReasonOverloaded, "%d token reviews in flight and %d waiting", cap(g.slots), g.maxWaiting)
		}
		g.waiting++
		g.mu.Unlock()
		defer func() { g.mu.Lock(); g.waiting--; g.mu.Unlock() }()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.wait)
		defer cancel()
	}
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		if bounded {
			return fail(ReasonOverloaded, "no token review slot within %s", g.wait)
		}
		return fail(ReasonReviewFailed, "waiting for a token review slot: %w", ctx.Err())
	}
}

func (g *gate) leave() { <-g.slots }

// tarpit holds a call of an address over its budget before it is refused, so
// a flooding client spends its time waiting instead of mizzen's CPU on
// refusals. At most cap(slots) calls are held at once (bounded memory); the
// rest are refused at once.
type tarpit struct {
	slots chan struct{}
	delay time.Duration
}

func (t *tarpit) hold(ctx context.Context) {
	if t.delay <= 0 {
		return
	}
	select {
	case t.slots <- struct{}{}:
	default:
		return
	}
	defer func() { <-t.slots }()
	timer := time.NewTimer(t.delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
