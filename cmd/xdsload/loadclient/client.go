// Package loadclient simulates many Envoy proxies on plain ADS streams, state of
// the world or incremental (delta, Config.Delta), and measures how fast a
// control plane converges them. It speaks only standard xDS
// (envoy.service.discovery.v3.AggregatedDiscoveryService), so it can drive any
// control plane: mizzen, istiod, or a go-control-plane test server.
//
// Every simulated proxy behaves like Envoy on ADS: it subscribes to CDS and LDS
// (wildcard), ACKs every response (it never NACKs), subscribes to EDS for the EDS
// clusters of each CDS response and to RDS for the route configurations named by
// the HTTP connection managers of each LDS response. In delta mode it holds
// what it was sent and (un)subscribes by name as clusters and listeners come
// and go (delta.go).
package loadclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// The four xDS types a simulated proxy subscribes to.
const (
	TypeCDS = resourcev3.ClusterType
	TypeEDS = resourcev3.EndpointType
	TypeLDS = resourcev3.ListenerType
	TypeRDS = resourcev3.RouteType
)

// Types lists the subscribed types in the order Envoy warms them.
var Types = [...]string{TypeCDS, TypeEDS, TypeLDS, TypeRDS}

// ShortType returns "CDS", "EDS", "LDS" or "RDS" for a subscribed type URL, else the URL.
func ShortType(typeURL string) string {
	switch typeURL {
	case TypeCDS:
		return "CDS"
	case TypeEDS:
		return "EDS"
	case TypeLDS:
		return "LDS"
	case TypeRDS:
		return "RDS"
	}
	return typeURL
}

// Config describes the simulated fleet.
type Config struct {
	// Addr is the plaintext gRPC xDS address, e.g. 127.0.0.1:15010.
	Addr string
	// Failover, when set, lists more addresses (replicas of the control
	// plane): each connection uses the first that answers, and a proxy whose
	// replica dies reconnects to the next, like Envoy behind a Service.
	Failover []string
	// Proxies is the number of simulated proxies (one ADS stream each).
	Proxies int
	// Namespace of the simulated pods: the first of the namespaces they are
	// spread over (see Namespaces).
	Namespace string
	// Namespaces spreads the workloads over this many namespaces: Namespace,
	// Namespace-1, …, Namespace-(n-1) (NamespaceNames); workload w lives in the
	// (w mod n)-th. 0 or 1: all in Namespace.
	Namespaces int
	// Workloads is the number of distinct workloads (Deployments, one
	// ReplicaSet each) the sidecars belong to, like the pods of a real cluster:
	// proxy i is a replica of workload i mod Workloads and carries its labels
	// (app, version, pod-template-hash, Istio's canonical-name/-revision and
	// tlsMode; see WorkloadLabels). 0 means Proxies/2 (two replicas each), at
	// least 1. SameLabels restores the old fleet where every proxy has the same
	// labels.
	Workloads int
	// WorkloadPrefix names the workloads: workload w is the Deployment
	// "<prefix>-<w>" (label app), default "load".
	WorkloadPrefix string
	// IstioVersion is the ISTIO_VERSION metadata of the workload sidecars, as
	// pilot-agent sends it (default "1.31.0"; "-" sends none). Control planes
	// key features on it (istiod warns without it; mizzen adds Istio's stats
	// filters for an istio-agent bootstrap).
	IstioVersion string
	// SameLabels gives every sidecar the labels app=load, version=v1 (and a
	// pod name load-<i>), as xdsload did before it simulated workloads: every
	// proxy then shares every label-dependent part of the config.
	SameLabels bool
	// Router makes the proxies gateways (router~…, LABELS istio=ingressgateway).
	Router bool
	// ServiceAccount is the SERVICE_ACCOUNT metadata value (default "default").
	ServiceAccount string
	// ClusterID is the CLUSTER_ID metadata value (default "Kubernetes").
	ClusterID string
	// Conns is the number of gRPC connections the streams are spread over;
	// 0 means one connection per proxy, as with real Envoys.
	Conns int
	// Ramp spreads the stream starts evenly over this duration (0: all at once).
	Ramp time.Duration
	// MaxRecvBytes bounds one response message (default 256 MiB).
	MaxRecvBytes int
	// WindowSize is the HTTP/2 stream and connection flow-control window
	// (default 1 MiB, what istio-agent dials the control plane with:
	// pilot/pkg/grpc ClientOptions). gRPC's own default, 64 KiB grown by BDP
	// probes, barely grows on loopback, so a 500 KB route table waited for
	// several window updates, which no real proxy does.
	WindowSize int32
	// Delta makes every proxy speak incremental xDS (DeltaAggregatedResources)
	// instead of state of the world, as Envoy does with a DELTA_GRPC ADS
	// config source (istio-agent's default since Istio 1.22).
	Delta bool
	// GRPCTransport runs delta streams on gRPC's client instead of the lean
	// HTTP/2 transport (h2stream.go), which costs the machine being measured
	// about half the CPU per response. Delta streams use gRPC's anyway when
	// Failover is set or Conns shares connections between proxies.
	GRPCTransport bool
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.Addr == "" {
		return errors.New("loadclient: empty xDS address")
	}
	if c.Proxies <= 0 {
		return fmt.Errorf("loadclient: proxies must be > 0, got %d", c.Proxies)
	}
	if c.Proxies > 250*65536 {
		return fmt.Errorf("loadclient: at most %d proxies", 250*65536)
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Namespaces <= 0 {
		c.Namespaces = 1
	}
	if c.Workloads <= 0 {
		c.Workloads = max(1, c.Proxies/2)
	}
	if c.WorkloadPrefix == "" {
		c.WorkloadPrefix = "load"
	}
	if c.IstioVersion == "" {
		c.IstioVersion = "1.31.0"
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = "default"
	}
	if c.ClusterID == "" {
		c.ClusterID = "Kubernetes"
	}
	if c.Conns <= 0 || c.Conns > c.Proxies {
		c.Conns = c.Proxies
	}
	if c.MaxRecvBytes <= 0 {
		c.MaxRecvBytes = 256 << 20
	}
	if c.WindowSize <= 0 {
		c.WindowSize = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Client owns the simulated proxies, their connections and goroutines.
type Client struct {
	cfg     Config
	proxies []*proxy
	conns   []*grpc.ClientConn

	started   time.Time
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	// fleet-wide counters
	responses    atomic.Int64
	bytes        atomic.Int64
	acks         atomic.Int64
	streamErrors atomic.Int64
	decodeErrors atomic.Int64
	fullCount    atomic.Int64
	fullNotify   chan struct{} // signalled (non-blocking) whenever a proxy first gets full config
	codec        leanCodec     // delta streams' (leandelta.go)

	round atomic.Pointer[round]
}

// New validates the config; it does not connect.
func New(cfg Config) (*Client, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	codec, err := newLeanCodec()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, fullNotify: make(chan struct{}, 1), codec: codec}
	c.proxies = make([]*proxy, cfg.Proxies)
	namespaces := NamespaceNames(cfg.Namespace, cfg.Namespaces)
	for i := range c.proxies {
		c.proxies[i] = newProxy(c, i, namespaces)
	}
	return c, nil
}

// Start dials the control plane and starts one goroutine per proxy. The streams
// live until ctx is done or Close is called; a broken stream is re-opened with
// backoff, as Envoy does.
func (c *Client) Start(ctx context.Context) error {
	if c.cancel != nil {
		return errors.New("loadclient: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	conns := c.cfg.Conns
	if c.leanTransport() {
		conns = 0 // each stream dials its own (h2stream.go)
	}
	for range conns {
		target := c.cfg.Addr
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.cfg.MaxRecvBytes)),
			grpc.WithInitialWindowSize(c.cfg.WindowSize),
			grpc.WithInitialConnWindowSize(c.cfg.WindowSize),
		}
		if len(c.cfg.Failover) > 0 {
			// pick_first (gRPC's default) over the replicas, in order.
			r := manual.NewBuilderWithScheme("xdsload")
			addrs := []resolver.Address{{Addr: c.cfg.Addr}}
			for _, a := range c.cfg.Failover {
				addrs = append(addrs, resolver.Address{Addr: a})
			}
			r.InitialState(resolver.State{Addresses: addrs})
			target = r.Scheme() + ":///replicas"
			opts = append(opts, grpc.WithResolvers(r))
		}
		conn, err := grpc.NewClient(target, opts...)
		if err != nil {
			c.Close()
			return fmt.Errorf("loadclient: dial %s: %w", c.cfg.Addr, err)
		}
		c.conns = append(c.conns, conn)
	}
	c.started = time.Now()
	var step time.Duration
	if c.cfg.Ramp > 0 && len(c.proxies) > 1 {
		step = c.cfg.Ramp / time.Duration(len(c.proxies)-1)
	}
	for i, p := range c.proxies {
		var conn grpc.ClientConnInterface
		if len(c.conns) > 0 {
			conn = c.conns[i%len(c.conns)]
		}
		delay := time.Duration(i) * step
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if delay > 0 && !sleepCtx(ctx, delay) {
				return
			}
			p.run(ctx, conn)
		}()
	}
	return nil
}

// leanTransport reports whether delta streams use h2stream.go: one
// connection per proxy to one address.
func (c *Client) leanTransport() bool {
	return c.cfg.Delta && !c.cfg.GRPCTransport && len(c.cfg.Failover) == 0 && c.cfg.Conns == c.cfg.Proxies
}

// Close stops every stream, waits for the goroutines and closes the connections.
// It is safe to call more than once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		for _, conn := range c.conns {
			_ = conn.Close()
		}
	})
}

// Config returns the configuration with its defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Started is when Start launched the streams.
func (c *Client) Started() time.Time { return c.started }

// Counters are fleet-wide totals.
type Counters struct {
	Responses    int64 `json:"responses_received"`
	Bytes        int64 `json:"bytes_received"`
	Acks         int64 `json:"acks_sent"`
	StreamErrors int64 `json:"stream_errors"`
	DecodeErrors int64 `json:"decode_errors"`
}

// Counters returns the current totals.
func (c *Client) Counters() Counters {
	return Counters{
		Responses:    c.responses.Load(),
		Bytes:        c.bytes.Load(),
		Acks:         c.acks.Load(),
		StreamErrors: c.streamErrors.Load(),
		DecodeErrors: c.decodeErrors.Load(),
	}
}

// Status returns a copy of every proxy's state.
func (c *Client) Status() []ProxyStatus {
	out := make([]ProxyStatus, len(c.proxies))
	for i, p := range c.proxies {
		out[i] = p.status()
	}
	return out
}

// InitialResult is the outcome of WaitInitial.
type InitialResult struct {
	// Converged is how many proxies got a first full config (CDS, LDS, EDS, RDS ACKed).
	Converged int
	// Failed names the proxies (node IDs) that did not.
	Failed []string
	// All is the time from Start until the last converged proxy had its full config.
	All time.Duration
	// PerProxy holds, per converged proxy, the time from its first stream open to its full config.
	PerProxy []time.Duration
}

// Histories returns each proxy's ACK history (ProxyStatus.History) alone,
// without the per-type state that Status copies and sorts.
func (c *Client) Histories() [][]AckRecord {
	out := make([][]AckRecord, len(c.proxies))
	for i, p := range c.proxies {
		p.mu.Lock()
		out[i] = slices.Clone(p.history)
		p.mu.Unlock()
	}
	return out
}

// WaitInitial waits until every proxy has ACKed its first full config, or timeout.
func (c *Client) WaitInitial(ctx context.Context, timeout time.Duration) InitialResult {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	n := int64(len(c.proxies))
wait:
	for c.fullCount.Load() < n {
		select {
		case <-c.fullNotify:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	var res InitialResult
	for _, p := range c.proxies {
		// Not p.status(): it copies and sorts every name the proxy holds.
		p.mu.Lock()
		full, first := p.fullConfigAt, p.firstStreamAt
		p.mu.Unlock()
		if full.IsZero() {
			res.Failed = append(res.Failed, p.id)
			continue
		}
		res.Converged++
		res.PerProxy = append(res.PerProxy, full.Sub(first))
		if d := full.Sub(c.started); d > res.All {
			res.All = d
		}
	}
	return res
}

// ChangeResult is the outcome of one measured change.
type ChangeResult struct {
	// Start is when the trigger began (just before the write or command).
	Start time.Time
	// TriggerTook is how long the trigger itself ran.
	TriggerTook time.Duration
	// Converged is how many proxies ACKed a new version within the timeout.
	Converged int
	// Failed names the proxies (node IDs) that did not.
	Failed []string
	// AllAcked is the time until the last proxy ACKed; valid only if Failed is empty.
	AllAcked time.Duration
	// PerProxy holds the convergence time of each converged proxy.
	PerProxy []time.Duration
}

// MeasureChange runs trigger and measures, for every proxy, the time from the
// trigger's start until the proxy ACKed the first response that it received after
// that start and that carried a new version of any type. Proxies that don't within
// timeout are reported as failed.
func (c *Client) MeasureChange(ctx context.Context, trigger func(context.Context) error, timeout time.Duration) (ChangeResult, error) {
	defer holdGC()()
	r := newRound(len(c.proxies), time.Now())
	c.round.Store(r)
	defer c.round.Store(nil)
	if err := trigger(ctx); err != nil {
		return ChangeResult{}, fmt.Errorf("change trigger: %w", err)
	}
	res := ChangeResult{Start: r.start, TriggerTook: time.Since(r.start)}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	at := r.snapshot()
	for i, t := range at {
		if t.IsZero() {
			res.Failed = append(res.Failed, c.proxies[i].id)
			continue
		}
		d := t.Sub(r.start)
		res.Converged++
		res.PerProxy = append(res.PerProxy, d)
		if d > res.AllAcked {
			res.AllAcked = d
		}
	}
	return res, nil
}

// holdGC keeps this process's collections out of a measured change until
// the returned function is called. The load client's heap (1,000 proxies'
// state: 250 MB) takes one core 120 ms to mark, and a collection that started
// during a change held up every simulated proxy at once, which no fleet of
// separate Envoys does: it set the p99 of the Kubernetes benchmark's first
// endpoint change (117 ms against 41-60 ms for the others). A change
// allocates a few MB here; a memory limit 1 GiB above the heap still bounds
// what a large one may take before the runtime collects anyway.
func holdGC() (release func()) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	limit := debug.SetMemoryLimit(-1)
	if s[0].Value.Kind() == metrics.KindUint64 {
		debug.SetMemoryLimit(min(limit, int64(s[0].Value.Uint64())+1<<30))
	}
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

// round tracks one measured change.
type round struct {
	start time.Time
	done  chan struct{}

	mu sync.Mutex
	at []time.Time
	n  int
}

func newRound(n int, start time.Time) *round {
	return &round{start: start, done: make(chan struct{}), at: make([]time.Time, n)}
}

func (r *round) observe(i int, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at[i].IsZero() {
		return
	}
	r.at[i] = t
	r.n++
	if r.n == len(r.at) {
		close(r.done)
	}
}

func (r *round) snapshot() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// WaitQuiet waits until the proxies received no response for quiet, at most
// max; it reports whether they went quiet.
func (c *Client) WaitQuiet(ctx context.Context, quiet, max time.Duration) bool {
	deadline := time.Now().Add(max)
	last, since := c.responses.Load(), time.Now()
	tick := min(quiet/10, 50*time.Millisecond)
	for time.Now().Before(deadline) {
		if !sleepCtx(ctx, tick) {
			return false
		}
		if n := c.responses.Load(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return true
		}
	}
	return false
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of ds, 0 if empty.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(float64(len(s)) * p / 100))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
