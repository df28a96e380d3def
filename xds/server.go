// Package xds serves Envoy configuration over ADS (state of the world): it turns
// each model snapshot into a generation of shared, pre-marshalled resources and
// pushes to every connected proxy what changed for it.
package xds

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/pkg/authn"
	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Options configure a Server.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// PushConcurrency bounds how many proxies are built for at once (default 2×GOMAXPROCS).
	PushConcurrency int

	// CA issues the `default`/`ROOTCA` secrets of proxies whose stream proved
	// an identity (nil: no SDS). CertTTL is their lifetime (0: the CA's default).
	CA      CASource
	CertTTL time.Duration
	// TrustDomain of identities taken from node metadata (InsecureDevIdentity).
	TrustDomain string
	// InsecureDevIdentity trusts the NAMESPACE and SERVICE_ACCOUNT node
	// metadata of streams that proved no identity (cluster-less development
	// only: anyone who can connect gets any identity's certificate).
	InsecureDevIdentity bool
	// IdentityReviewInterval is how often the identity of a stream that
	// proved one is checked again (revalidate.go; 0: the default).
	IdentityReviewInterval time.Duration
	// SendBudget bounds the bytes of large responses sent and not yet
	// answered, over all streams (sendbudget.go; 0: 64 MiB).
	SendBudget int64
	// Pushes, if set, hears when each push starts and ends (mizzen serve
	// gives it memtrim's Pacer).
	Pushes PushObserver
}

// PushObserver hears of pushes. Its methods are called on the push
// goroutine and must not block.
type PushObserver interface {
	PushStarted()
	PushDone(endpointOnly bool)
}

// Server is the ADS server plus its push loop.
type Server struct {
	log     *slog.Logger
	metrics *Metrics
	workers int
	cache   *proxyCache

	mu        sync.Mutex
	gen       *generation
	pending   *model.Snapshot
	pendingAt time.Time
	wake      chan struct{}
	ready     atomic.Bool

	// deltaStreams numbers delta streams (deltaserver.go).
	deltaStreams atomic.Int64
	streamsMu    sync.Mutex
	streams      map[int64]string // stream ID -> node ID
	// proven: identities the transport proved, by stream ID, until the
	// stream's first request names its node.
	proven map[int64]authn.Identity

	secrets     *secrets
	guards      *guards // revalidate.go
	changes     *changeLog
	trustDomain string
	devIdentity bool

	pushes   pushLog // the last push, for /debug/push_status (debug.go)
	observer PushObserver

	budget *sendBudget
}

// New creates a Server; call Run to start pushing and Register to serve gRPC.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PushConcurrency <= 0 {
		o.PushConcurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if o.TrustDomain == "" {
		o.TrustDomain = certs.DefaultTrustDomain
	}
	s := &Server{log: o.Logger, metrics: o.Metrics, workers: o.PushConcurrency, wake: make(chan struct{}, 1),
		streams: map[int64]string{}, proven: map[int64]authn.Identity{}, trustDomain: o.TrustDomain, devIdentity: o.InsecureDevIdentity,
		observer: o.Pushes}
	if o.CA != nil {
		s.secrets = &secrets{ca: o.CA, ttl: o.CertTTL}
	}
	var reg prometheus.Registerer
	if o.Metrics != nil {
		reg = o.Metrics.reg
	}
	s.guards = newGuards(o.IdentityReviewInterval, reg)
	s.budget = newSendBudget(o.SendBudget)
	if reg != nil {
		registerBudgetMetrics(reg, s.budget)
	}
	s.changes = newChangeLog(reg)
	s.cache = newProxyCache(o.Logger, o.Metrics, s.changes)
	s.cache.builder = s.buildForNewProxy
	return s
}

// Register adds the ADS service to a gRPC server.
//
// ADS runs in go-control-plane's ordered mode: one FIFO response channel per
// stream, so responses go out in the order the cache answers (CDS, EDS, LDS,
// RDS). Without it each type has its own channel and the stream picks among
// ready ones at random, so e.g. held routes released together with their
// listeners could reach Envoy before those listeners.
func (s *Server) Register(ctx context.Context, g *grpc.Server) {
	srv := serverv3.NewServer(ctx, s.cache, s.callbacks(), sotw.WithOrderedADS())
	discovery.RegisterAggregatedDiscoveryServiceServer(g, guardedADS{
		sotw: func(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
			sb := s.budget.stream()
			defer sb.releaseAll()
			return srv.StreamAggregatedResources(budgetedSotw(st, sb))
		},
		delta: func(streamCtx context.Context, st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, revoked <-chan struct{}) error {
			sb := s.budget.stream()
			defer sb.releaseAll()
			return s.serveDelta(ctx, streamCtx, budgetedDelta(st, sb), revoked)
		},
	})
}

// Ready reports whether the first snapshot has been built, so proxies that
// connect get config at once.
func (s *Server) Ready() bool { return s.ready.Load() }

// Update hands the server a new snapshot. It never blocks: if a push is running,
// the snapshot waits and later ones replace it, so a burst of changes costs one
// more push, not one per change, and a lone change is pushed at once.
func (s *Server) Update(snap *model.Snapshot) {
	s.mu.Lock()
	if s.pending == nil {
		s.pendingAt = time.Now()
	}
	s.pending = snap
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run pushes snapshots, and renews workload certificates, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); s.runRotation(ctx) }()
	go func() { defer wg.Done(); s.runRevalidation(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		snap, at := s.pending, s.pendingAt
		s.pending = nil
		s.mu.Unlock()
		if snap != nil {
			s.push(ctx, snap, at)
		}
	}
}

func (s *Server) push(ctx context.Context, snap *model.Snapshot, changeAt time.Time) {
	start := time.Now()
	endpointOnly := false
	if s.observer != nil {
		s.observer.PushStarted()
		defer func() { s.observer.PushDone(endpointOnly) }()
	}
	s.mu.Lock()
	prev := s.gen
	s.mu.Unlock()
	gen, err := newGeneration(snap, prev, s.log)
	if err != nil {
		// Keep serving the last good generation; the error names the resource.
		s.metrics.internalErrors.Inc()
		s.log.Error("building config failed; proxies keep their last good config", "version", snap.Version, "err", err)
		s.pushes.record(PushRecord{Version: snap.Version, Start: start, Duration: time.Since(start), Error: err.Error()})
		return
	}
	trigger := "config"
	if endpointOnly = gen.endpointOnly(prev); endpointOnly {
		trigger = "endpoint"
	}
	s.metrics.triggers.WithLabelValues(trigger).Inc()
	s.metrics.services.Set(float64(len(snap.Services())))
	s.mu.Lock()
	s.gen = gen
	s.mu.Unlock()
	s.ready.Store(true)
	conns := s.cache.snapshotConns()
	// Sized for every proxy: a change usually touches most of them, and
	// growing the map one step at a time rehashed it ten times per push.
	ch := &change{ID: snap.Version, Trigger: trigger, At: changeAt, Proxies: make(map[string]*proxyChange, len(conns))}
	ch.Changed, ch.Truncated = gen.changedNames(prev)
	s.changes.start(ch)

	work := make(chan *conn)
	var wg sync.WaitGroup
	for i := 0; i < min(s.workers, max(len(conns), 1)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cn := range work {
				cn.mu.Lock()
				prevInbound := cn.inbound
				var prevSets [numTypes]*resourceSet
				for t := range prevSets {
					if typeIndex(t) != sdsType { // the conn's SDS set holds its own certificate
						prevSets[t] = cn.types[t].set
					}
				}
				cn.mu.Unlock()
				sets, inbound, err := gen.build(cn.proxy, prevInbound, prevSets)
				if err != nil {
					s.metrics.internalErrors.Inc()
					s.log.Error("building proxy config failed; it keeps its last good config", "proxy", cn.id, "err", err)
					continue
				}
				s.cache.install(cn, gen, sets, inbound, ch)
			}
		}()
	}
	for _, cn := range conns {
		select {
		case work <- cn:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	s.changes.pushed(ch, time.Now())
	s.metrics.pushTime.WithLabelValues(trigger).Observe(time.Since(start).Seconds())
	s.pushes.record(PushRecord{Version: snap.Version, Trigger: trigger, Start: start, Duration: time.Since(start), Proxies: len(conns)})
	s.log.Debug("pushed", "version", snap.Version, "trigger", trigger, "proxies", len(conns), "took", time.Since(start))
}

func (s *Server) buildForNewProxy(p *model.Proxy) (*generation, [numTypes]*resourceSet, *inboundParts, error) {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if gen == nil {
		return nil, [numTypes]*resourceSet{}, nil, nil
	}
	sets, inbound, err := gen.build(p, nil, [numTypes]*resourceSet{})
	return gen, sets, inbound, err
}

// Stream IDs: SotW (go-control-plane's server) and delta streams
// (deltaserver.go) are numbered separately, so delta streams are kept under
// the negated ID.
func deltaKey(id int64) int64 { return -id }

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.streamOpen(ctx, id)
			return nil
		},
		StreamRequestFunc: func(id int64, req *discovery.DiscoveryRequest) error {
			return s.streamRequest(id, req.GetNode())
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			if nodeID, known := s.streamNode(id); known {
				s.cache.responseWritten(nodeID, resp)
			}
		},
		StreamClosedFunc: func(id int64, node *core.Node) { s.streamClosed(id, node) },
	}
}

func (s *Server) streamOpen(ctx context.Context, key int64) {
	s.guards.open(ctx, key)
	if ident, ok := authn.FromContext(ctx); ok {
		s.streamsMu.Lock()
		s.proven[key] = ident
		s.streamsMu.Unlock()
	}
}

func (s *Server) streamNode(key int64) (string, bool) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	nodeID, known := s.streams[key]
	return nodeID, known
}

// streamRequest registers the stream's proxy on its first request (which must
// name the node); later requests pass.
func (s *Server) streamRequest(key int64, node *core.Node) error {
	if _, known := s.streamNode(key); known {
		return nil
	}
	if node.GetId() == "" {
		return fmt.Errorf("first request on stream %d carries no node ID", key)
	}
	s.streamsMu.Lock()
	proven, hasProof := s.proven[key]
	delete(s.proven, key)
	s.streamsMu.Unlock()
	cn, err := s.cache.streamOpened(node, s.identityCheck(proven, hasProof))
	if err != nil {
		s.metrics.identityRefusals.WithLabelValues(refusalReason(err)).Inc()
		s.log.Warn("refusing proxy", "node", node.GetId(), "err", err)
		if _, ok := err.(*refusal); ok {
			return status.Error(codes.PermissionDenied, err.Error())
		}
		return err
	}
	s.streamsMu.Lock()
	s.streams[key] = node.GetId()
	s.streamsMu.Unlock()
	s.guards.bind(key, node.GetId())
	if cn.identity != "" && s.secrets != nil && !cn.proxy.AgentSDS() {
		cn.mu.Lock()
		fresh := cn.secret == nil
		cn.mu.Unlock()
		if fresh {
			s.renewSecret(cn, cn.identity, time.Now())
		}
	}
	if cn.identity == "" && cn.proxy.Type == model.RouterProxy {
		// istiod's rule: gateway credentials only to a proven identity.
		s.log.Info("gateway proxy proved no identity: it is served no credential secrets, so its HTTPS (credentialName) servers are left out", "proxy", node.GetId())
	}
	s.metrics.connected.WithLabelValues(proxyVersion(node)).Inc()
	protocol := "sotw"
	if key < 0 {
		protocol = "delta"
	}
	s.log.Info("proxy connected", "proxy", node.GetId(), "stream", key, "protocol", protocol)
	return nil
}

func (s *Server) streamClosed(key int64, node *core.Node) {
	s.streamsMu.Lock()
	nodeID, known := s.streams[key]
	delete(s.streams, key)
	delete(s.proven, key)
	s.streamsMu.Unlock()
	s.guards.close(key)
	if !known {
		return
	}
	s.cache.streamClosed(nodeID)
	s.metrics.connected.WithLabelValues(proxyVersion(node)).Dec()
	s.log.Info("proxy disconnected", "proxy", nodeID, "stream", key)
}

// identityCheck decides the identity of a proxy from what its stream proved.
type identityCheck func(*model.Proxy) (string, error)

// refusal is a proxy refused for what it claims about itself.
type refusal struct{ reason, msg string }

func (r *refusal) Error() string { return r.msg }

func refusalReason(err error) string {
	if r, ok := err.(*refusal); ok {
		return r.reason
	}
	return "invalid_node"
}

// identityCheck: a proven identity must agree with the namespace and service
// account the node claims (its config is chosen by them), else the stream is
// refused; without proof the proxy has no identity, unless development mode
// trusts its metadata.
func (s *Server) identityCheck(proven authn.Identity, hasProof bool) identityCheck {
	return func(p *model.Proxy) (string, error) {
		if !hasProof {
			if s.devIdentity && p.Namespace != "" {
				return authn.InsecureDevIdentity(s.trustDomain, p.Namespace, p.ServiceAccount).SpiffeID(), nil
			}
			return "", nil
		}
		if p.Namespace != proven.Namespace {
			return "", &refusal{reason: "namespace_mismatch", msg: fmt.Sprintf(
				"node %s claims namespace %q but its credential is for %s", p.ID, p.Namespace, proven.SpiffeID())}
		}
		if p.ServiceAccount != "" && p.ServiceAccount != proven.ServiceAccount {
			return "", &refusal{reason: "service_account_mismatch", msg: fmt.Sprintf(
				"node %s claims service account %q but its credential is for %s", p.ID, p.ServiceAccount, proven.SpiffeID())}
		}
		return proven.SpiffeID(), nil
	}
}

// proxyVersion labels pilot_xds as istiod does: by the proxy's Istio version.
func proxyVersion(n *core.Node) string {
	if v, ok := n.GetMetadata().GetFields()["ISTIO_VERSION"]; ok && v.GetStringValue() != "" {
		return v.GetStringValue()
	}
	return "unknown"
}
