package authn

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

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
	rate  float64
	burst float64
	max   int

	mu       sync.Mutex
	m        map[netip.Prefix]*bucket
	overflow bucket
}

// bucket is a token bucket: tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

func newSources(perSecond float64, burst, max int) *sources {
	return &sources{rate: perSecond, burst: float64(burst), max: max, m: map[netip.Prefix]*bucket{},
		overflow: bucket{tokens: float64(burst)}}
}

// refill brings b up to now; call with mu held.
func (s *sources) refill(b *bucket, now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(s.burst, b.tokens+now.Sub(b.last).Seconds()*s.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
}

// bucket returns src's bucket, refilled to now; call with mu held.
func (s *sources) bucket(src netip.Prefix, now time.Time) *bucket {
	b, ok := s.m[src]
	if !ok {
		if len(s.m) >= s.max {
			for k, o := range s.m {
				if s.refill(o, now); o.tokens >= s.burst {
					delete(s.m, k)
				}
			}
		}
		if len(s.m) >= s.max {
			b = &s.overflow
		} else {
			b = &bucket{tokens: s.burst, last: now}
			s.m[src] = b
		}
	}
	s.refill(b, now)
	return b
}

// allow takes a token for a call refused without a review; false when the
// address is over budget.
func (s *sources) allow(src netip.Prefix, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bucket(src, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// reserve takes a token for a review, or returns nil when the address is
// over budget; refund gives the token back.
func (s *sources) reserve(src netip.Prefix, now time.Time) (refund func()) {
	if !s.allow(src, now) {
		return nil
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if b, ok := s.m[src]; ok {
			b.tokens = min(s.burst, b.tokens+1)
		} else {
			s.overflow.tokens = min(s.burst, s.overflow.tokens+1)
		}
	}
}

// tokens is what src's budget holds now (a full one if never used).
func (s *sources) tokens(src netip.Prefix, now time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[src]
	if !ok {
		if len(s.m) < s.max {
			return s.burst
		}
		b = &s.overflow
	}
	s.refill(b, now)
	return b.tokens
}

// untilToken is how long until src's budget holds a whole token.
func (s *sources) untilToken(src netip.Prefix, now time.Time) time.Duration {
	missing := 1 - s.tokens(src, now)
	if missing <= 0 {
		return 0
	}
	return max(time.Duration(missing/s.rate*float64(time.Second)), time.Millisecond)
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
	return prefixOf(p.Addr)
}

// prefixOf is the budget key of a remote address (see sourceOf).
func prefixOf(addr net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(addr.String())
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
