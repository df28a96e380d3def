package xds

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mizzenmesh/mizzen/pkg/authn"
)

// An identity proven when a stream opened can be revoked while the stream
// lives: its service account or pod deleted, its token expired. Such a
// stream must neither get another certificate nor keep its config, so the
// identity of every stream that proved one is checked again (authn.Recheck:
// a TokenReview) every IdentityReviewInterval and right before each
// certificate mizzen issues on it, and a stream whose identity is refused is
// ended with Unauthenticated. When the apiserver cannot answer the stream is
// kept (and no certificate issued) until it can: only a refusal revokes.

// DefaultIdentityReviewInterval is how often an open stream's identity is
// checked again when Options.IdentityReviewInterval is 0.
const DefaultIdentityReviewInterval = 5 * time.Minute

const (
	// issueReviewMaxAge: a certificate is issued only on an apiserver answer
	// at most this old, so the review that authenticated a new stream serves
	// for its first certificate, and every rotation asks again.
	issueReviewMaxAge = time.Second
	// reviewTimeout bounds one re-check, waiting for a review slot included.
	reviewTimeout = 15 * time.Second
	// reviewWorkers re-check streams at once; the reviewer bounds the load
	// on the apiserver anyway, this bounds the goroutines.
	reviewWorkers = 4
	// reviewRetryMax: after a re-check got no answer, the next one is this
	// soon (or one interval, if shorter).
	reviewRetryMax = 30 * time.Second
)

var errRevoked = errors.New("identity revoked")

// streamGuard is one stream whose identity can be checked again, and the
// means to end it.
type streamGuard struct {
	recheck  authn.Recheck
	identity authn.Identity
	revoked  chan struct{}
	once     sync.Once
	cause    error

	// Guarded by guards.mu.
	node string
	next time.Time // next periodic re-check
	busy bool      // a periodic re-check is running
}

// revoke ends the stream, calling before first; it reports whether this call
// did (before runs only then).
func (g *streamGuard) revoke(err error, before func()) bool {
	first := false
	g.once.Do(func() {
		before()
		g.cause = err
		close(g.revoked)
		first = true
	})
	return first
}

func (g *streamGuard) isRevoked() bool {
	select {
	case <-g.revoked:
		return true
	default:
		return false
	}
}

type guardKey struct{}

// guards are the guarded streams, by stream key and by node.
type guards struct {
	interval    time.Duration
	revocations *prometheus.CounterVec

	mu     sync.Mutex
	byKey  map[int64]*streamGuard
	byNode map[string][]*streamGuard
}

func newGuards(interval time.Duration, reg prometheus.Registerer) *guards {
	if interval <= 0 {
		interval = DefaultIdentityReviewInterval
	}
	g := &guards{interval: interval, byKey: map[int64]*streamGuard{}, byNode: map[string][]*streamGuard{}}
	if reg != nil {
		g.revocations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mizzen_xds_identity_revocations_total",
			Help: "xDS streams ended because their identity, checked again, was refused (deleted service account or pod, expired token), by reason."},
			[]string{"reason"})
		reg.MustRegister(g.revocations)
	}
	return g
}

// nextReview spreads the re-checks of streams that opened together: each
// comes after 90–100% of the interval, never later.
func (gs *guards) nextReview(now time.Time) time.Time {
	return now.Add(gs.interval - time.Duration(rand.Int64N(int64(gs.interval/10)+1)))
}

// open registers the stream's guard, if the stream has one (ctx is the
// stream's, as serveGuarded made it).
func (gs *guards) open(ctx context.Context, key int64) {
	g, ok := ctx.Value(guardKey{}).(*streamGuard)
	if !ok {
		return
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g.next = gs.nextReview(time.Now())
	gs.byKey[key] = g
}

// bind records the node of a registered stream, so certificates for that
// node are issued only after its guards are re-checked.
func (gs *guards) bind(key int64, node string) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g, ok := gs.byKey[key]; ok && g.node == "" {
		g.node = node
		gs.byNode[node] = append(gs.byNode[node], g)
	}
}

func (gs *guards) close(key int64) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g, ok := gs.byKey[key]
	if !ok {
		return
	}
	delete(gs.byKey, key)
	if g.node == "" {
		return
	}
	rest := gs.byNode[g.node][:0]
	for _, o := range gs.byNode[g.node] {
		if o != g {
			rest = append(rest, o)
		}
	}
	if len(rest) == 0 {
		delete(gs.byNode, g.node)
	} else {
		gs.byNode[g.node] = rest
	}
}

func (gs *guards) ofNode(node string) []*streamGuard {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]*streamGuard(nil), gs.byNode[node]...)
}

// due marks and returns the streams whose periodic re-check is due.
func (gs *guards) due(now time.Time) []*streamGuard {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	var out []*streamGuard
	for _, g := range gs.byKey {
		if !g.busy && !g.next.After(now) && !g.isRevoked() {
			g.busy = true
			out = append(out, g)
		}
	}
	return out
}

func (gs *guards) reviewed(g *streamGuard, next time.Time) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g.busy = false
	g.next = next
}

// runRevalidation re-checks each guarded stream's identity every interval
// until ctx ends.
func (s *Server) runRevalidation(ctx context.Context) {
	gs := s.guards
	t := time.NewTicker(min(max(gs.interval/20, 100*time.Millisecond), 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := gs.due(time.Now())
		if len(due) == 0 {
			continue
		}
		work := make(chan *streamGuard)
		var wg sync.WaitGroup
		for range min(reviewWorkers, len(due)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for g := range work {
					s.reviewStream(ctx, g, 0)
				}
			}()
		}
		for _, g := range due {
			select {
			case work <- g:
			case <-ctx.Done():
			}
		}
		close(work)
		wg.Wait()
	}
}

// reviewStream re-checks g's identity, accepting an answer at most maxAge
// old; a refusal ends the stream.
func (s *Server) reviewStream(ctx context.Context, g *streamGuard, maxAge time.Duration) error {
	gs := s.guards
	rctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	err := g.recheck(rctx, maxAge)
	cancel()
	now := time.Now()
	switch {
	case err == nil:
		gs.reviewed(g, gs.nextReview(now))
	case authn.Definite(err):
		gs.reviewed(g, now.Add(gs.interval))
		// Counted before the stream ends, so whoever sees it end sees it
		// counted.
		if g.revoke(err, func() {
			if gs.revocations != nil {
				gs.revocations.WithLabelValues(authn.Reason(err)).Inc()
			}
		}) {
			s.log.Warn("identity revoked: ending its xDS stream", "proxy", g.node, "identity", g.identity.SpiffeID(),
				"reason", authn.Reason(err), "err", err)
		}
	default:
		gs.reviewed(g, now.Add(min(gs.interval, reviewRetryMax)))
		s.log.Warn("could not check a stream's identity again; the stream is kept and the check retried",
			"proxy", g.node, "identity", g.identity.SpiffeID(), "err", err)
	}
	return err
}

// confirmIdentity re-checks the identity of every guarded stream of node
// before a certificate is issued to it; those refused are ended. It reports
// whether one of them still holds the identity, or the node has no guarded
// stream (its identity was not proven by a credential that can be checked
// again, e.g. --insecure-dev-identity).
func (s *Server) confirmIdentity(node string) bool {
	gs := s.guards.ofNode(node)
	if len(gs) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), reviewTimeout)
	defer cancel()
	confirmed := false
	for _, g := range gs {
		if !g.isRevoked() && s.reviewStream(ctx, g, issueReviewMaxAge) == nil {
			confirmed = true
		}
	}
	return confirmed
}

// guardedADS serves ADS (state of the world with go-control-plane's server,
// delta with mizzen's, deltaserver.go), giving each stream whose identity can
// be checked again (authn.RecheckFromContext) a guard.
type guardedADS struct {
	sotw func(discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error
	// delta serves a delta stream whose context is ctx and ends it when
	// revoked closes (nil: never); mizzen's own handler needs no wrapper.
	delta func(ctx context.Context, st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, revoked <-chan struct{}) error
}

func (a guardedADS) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return serveGuarded(st, a.sotw)
}

// DeltaAggregatedResources guards a delta stream without serveGuarded's
// extra goroutine per stream: the handler watches the guard itself.
func (a guardedADS) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	g, ctx := newStreamGuard(st.Context())
	if g == nil {
		return a.delta(st.Context(), st, nil)
	}
	err := a.delta(ctx, st, g.revoked)
	if g.isRevoked() {
		return status.Errorf(codes.Unauthenticated, "identity %s revoked: %v", g.identity.SpiffeID(), g.cause)
	}
	return err
}

// newStreamGuard returns a guard for a stream whose identity can be checked
// again (nil if it cannot) and the stream context that carries it.
func newStreamGuard(ctx context.Context) (*streamGuard, context.Context) {
	recheck, ok := authn.RecheckFromContext(ctx)
	if !ok {
		return nil, ctx
	}
	id, _ := authn.FromContext(ctx)
	g := &streamGuard{recheck: recheck, identity: id, revoked: make(chan struct{})}
	return g, context.WithValue(ctx, guardKey{}, g)
}

// serveGuarded runs serve on st; if st's identity can be checked again, the
// stream serve sees can be ended by its guard: go-control-plane's stream
// loop ends only when its Recv fails (or its server stops), so a revoked
// guard makes Recv fail, and Send too, so nothing more reaches the proxy
// before the stream ends with Unauthenticated.
func serveGuarded[Req, Resp any](st grpc.BidiStreamingServer[Req, Resp], serve func(grpc.BidiStreamingServer[Req, Resp]) error) error {
	g, ctx := newStreamGuard(st.Context())
	if g == nil {
		return serve(st)
	}
	w := &guardedStream[Req, Resp]{BidiStreamingServer: st, g: g, in: make(chan received[Req]), ctx: ctx}
	go w.pump()
	err := serve(w)
	if g.isRevoked() {
		return status.Errorf(codes.Unauthenticated, "identity %s revoked: %v", g.identity.SpiffeID(), g.cause)
	}
	return err
}

type received[T any] struct {
	msg *T
	err error
}

type guardedStream[Req, Resp any] struct {
	grpc.BidiStreamingServer[Req, Resp]
	ctx context.Context
	g   *streamGuard
	in  chan received[Req]
}

// pump moves the stream's requests to Recv until the stream fails; it ends
// with the stream (whose context gRPC cancels when the handler returns).
func (w *guardedStream[Req, Resp]) pump() {
	for {
		m, err := w.BidiStreamingServer.Recv()
		select {
		case w.in <- received[Req]{m, err}:
		case <-w.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (w *guardedStream[Req, Resp]) Context() context.Context { return w.ctx }

func (w *guardedStream[Req, Resp]) Recv() (*Req, error) {
	select {
	case r := <-w.in:
		return r.msg, r.err
	case <-w.g.revoked:
		return nil, errRevoked
	}
}

func (w *guardedStream[Req, Resp]) Send(m *Resp) error {
	if w.g.isRevoked() {
		return errRevoked
	}
	return w.BidiStreamingServer.Send(m)
}
