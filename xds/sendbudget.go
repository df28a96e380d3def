package xds

import (
	"context"
	"slices"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// A sendBudget bounds the bytes of large xDS responses that are sent but not
// yet answered (ACK or NACK), across every stream. Without it a fleet's
// warm-up, or a route change at thousands of proxies, puts megabytes per
// connection into kernel socket buffers at once: on a 2-core test machine
// 5,000 delta proxies pushed the host into TCP memory pressure, the kernel
// dropped segments, and gRPC's TCP_USER_TIMEOUT (the keepalive timeout, 10s)
// reset a third of the connections, which then reconnected and started over.
// With the budget only as many proxies get their large responses at once as
// fit; the rest wait their turn (FIFO) and are served as answers come back.
//
// A stream that already holds budget is never made to wait for more (its
// next type must not wait behind its own unanswered response), small
// responses (an endpoint change) never wait, and what a stream holds is
// given back when it answers, ends, or after budgetHold at the latest, so a
// proxy that never answers cannot starve the others. budgetHold is short on
// purpose: a stream stuck in flow control blocks in Send after its first
// response, so each never-reading caller can hold budget once, for 2s; a
// healthy proxy that answers later than that only means the budget was
// briefly larger than configured.
type sendBudget struct {
	limit int64

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // FIFO
	// waited counts acquisitions that had to wait, for the metric.
	waited uint64
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

const (
	// defaultSendBudget: room for ~50 full sidecar configs of a 1,000-service
	// mesh in flight, far below the TCP memory of even a small node.
	defaultSendBudget = 64 << 20
	// budgetSmall: responses below this never wait (10,000 endpoint updates
	// in flight are still only 160 MiB).
	budgetSmall = 16 << 10
	// budgetHold is how long a stream may hold budget without answering.
	budgetHold = 2 * time.Second
)

func newSendBudget(limit int64) *sendBudget {
	if limit <= 0 {
		limit = defaultSendBudget
	}
	return &sendBudget{limit: limit}
}

// acquire takes n bytes, waiting in line while the budget is spent.
func (b *sendBudget) acquire(ctx context.Context, n int64) error {
	n = min(n, b.limit)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.waited++
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.used -= w.n
			b.grantLocked()
		default:
			if i := slices.Index(b.waiters, w); i >= 0 {
				b.waiters = slices.Delete(b.waiters, i, i+1)
			}
			b.grantLocked()
		}
		return ctx.Err()
	}
}

// force takes n bytes without waiting (a stream already in flight).
func (b *sendBudget) force(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

func (b *sendBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked lets waiters in, in order, while they fit (a waiter asks for
// at most the whole budget, so an empty budget always fits the first).
func (b *sendBudget) grantLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.used+w.n > b.limit {
			return
		}
		b.used += w.n
		b.waiters = b.waiters[1:]
		close(w.ready)
	}
}

// inUse is the bytes held and the number of streams waiting.
func (b *sendBudget) inUse() (used int64, waiting int, waited uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, len(b.waiters), b.waited
}

// streamBudget is one stream's share: what it holds per type.
type streamBudget struct {
	b *sendBudget

	mu    sync.Mutex
	held  [numTypes]int64
	total int64
	timer *time.Timer
}

func (b *sendBudget) stream() *streamBudget { return &streamBudget{b: b} }

// sending accounts for a response of n bytes of type typeURL before it is
// sent; it waits only if the stream holds nothing yet.
func (s *streamBudget) sending(ctx context.Context, typeURL string, n int64) error {
	t, known := typeOf(typeURL)
	if n < budgetSmall || !known { // mizzen sends only types it serves
		return nil
	}
	s.mu.Lock()
	holding := s.total > 0
	s.mu.Unlock()
	// Only this stream's sending goroutine adds, so holding cannot turn
	// false to true behind our back; it can drop to zero (an answer, the
	// hold timer), which only means we took the shorter path.
	if holding {
		s.b.force(n)
	} else if err := s.b.acquire(ctx, n); err != nil {
		return err
	} else {
		n = min(n, s.b.limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[t] += n
	s.total += n
	if s.timer == nil {
		s.timer = time.AfterFunc(budgetHold, s.releaseAll)
	} else if s.total == n {
		s.timer.Reset(budgetHold)
	}
	return nil
}

// answered gives back what the stream holds for typeURL: the proxy ACKed or
// NACKed a response of that type.
func (s *streamBudget) answered(typeURL string) {
	t, known := typeOf(typeURL)
	if !known {
		return
	}
	s.mu.Lock()
	n := s.held[t]
	if n == 0 {
		s.mu.Unlock()
		return
	}
	s.held[t] = 0
	s.total -= n
	if s.total == 0 && s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.b.release(n)
}

// releaseAll gives back everything (stream end, or held too long).
func (s *streamBudget) releaseAll() {
	s.mu.Lock()
	n := s.total
	s.total = 0
	s.held = [numTypes]int64{}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.b.release(n)
}

// responseBytes approximates the encoded size of a response: its resources'
// bytes (a pre-encoded part counts as the run of resources it carries).
func responseBytes(r *discovery.DiscoveryResponse) int64 {
	var n int64
	for _, a := range r.GetResources() {
		n += int64(len(a.GetValue()))
	}
	return n
}

func deltaResponseBytes(r *discovery.DeltaDiscoveryResponse) int64 {
	var n int64
	for _, res := range r.GetResources() {
		n += int64(len(res.GetResource().GetValue()))
	}
	return n
}

// budgeted accounts for one ADS stream's responses (SotW or delta) and its
// answers.
type budgeted[Req any, PReq interface {
	*Req
	GetTypeUrl() string
	GetResponseNonce() string
}, Resp any] struct {
	grpc.BidiStreamingServer[Req, Resp]
	sb   *streamBudget
	size func(*Resp) int64
	typ  func(*Resp) string
}

func budgetedSotw(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer, sb *streamBudget) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer {
	return budgeted[discovery.DiscoveryRequest, *discovery.DiscoveryRequest, discovery.DiscoveryResponse]{
		st, sb, responseBytes, (*discovery.DiscoveryResponse).GetTypeUrl}
}

func budgetedDelta(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, sb *streamBudget) discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer {
	return budgeted[discovery.DeltaDiscoveryRequest, *discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]{
		st, sb, deltaResponseBytes, (*discovery.DeltaDiscoveryResponse).GetTypeUrl}
}

func (s budgeted[Req, PReq, Resp]) Send(r *Resp) error {
	if err := s.sb.sending(s.Context(), s.typ(r), s.size(r)); err != nil {
		return err
	}
	return s.BidiStreamingServer.Send(r)
}

func (s budgeted[Req, PReq, Resp]) Recv() (*Req, error) {
	req, err := s.BidiStreamingServer.Recv()
	if err == nil && PReq(req).GetResponseNonce() != "" {
		s.sb.answered(PReq(req).GetTypeUrl())
	}
	return req, err
}

func registerBudgetMetrics(reg prometheus.Registerer, b *sendBudget) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mizzen_xds_send_budget_bytes",
			Help: "Bytes of large xDS responses sent and not yet ACKed or NACKed (bounded by the send budget)."},
			func() float64 { u, _, _ := b.inUse(); return float64(u) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mizzen_xds_send_budget_waiting",
			Help: "Streams waiting for send budget before their large response goes out."},
			func() float64 { _, w, _ := b.inUse(); return float64(w) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mizzen_xds_send_budget_waits_total",
			Help: "Large responses that waited for send budget."},
			func() float64 { _, _, n := b.inUse(); return float64(n) }),
	)
}
