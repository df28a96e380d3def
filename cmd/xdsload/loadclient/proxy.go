package loadclient

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// maxHistory bounds the per-proxy record of ACKed (type, version) pairs.
const maxHistory = 4096

// ProxyStatus is a copy of one simulated proxy's state.
type ProxyStatus struct {
	Index int
	// ID is the Istio node ID, e.g. sidecar~10.1.0.1~load-0.default~default.svc.cluster.local.
	ID string
	// FirstStreamAt is when the proxy opened its first stream.
	FirstStreamAt time.Time
	// FullConfigAt is when it first had CDS, LDS, EDS and RDS ACKed (zero: not yet).
	FullConfigAt time.Time
	// Streams counts the streams opened (more than 1 after reconnects).
	Streams int
	// Types holds per type URL what was ACKed.
	Types map[string]TypeStatus
	// History lists every ACK of a new (type, version), oldest first (bounded).
	History []AckRecord
}

// TypeStatus is what a proxy ACKed of one type.
type TypeStatus struct {
	// Version is the version_info (delta: system_version_info) of the last ACKed response.
	Version string
	// Names is the current subscription; empty is wildcard for CDS/LDS.
	Names []string
	// Held (delta only) counts the resources held.
	Held       int
	Acks       int64
	FirstAckAt time.Time
	LastAckAt  time.Time
}

// AckRecord is one ACK of a new version.
type AckRecord struct {
	Type    string
	Version string
	At      time.Time
}

type typeState struct {
	// per stream
	requested  bool
	names      []string
	version    string
	nonce      string
	ackedOnce  bool // on the current stream
	lastVer    string
	acks       int64
	firstAckAt time.Time
	lastAckAt  time.Time
}

type proxy struct {
	c    *Client
	idx  int
	id   string
	node *core.Node

	mu            sync.Mutex
	types         map[string]*typeState
	firstStreamAt time.Time
	fullConfigAt  time.Time
	streams       int
	history       []AckRecord
	// dtypes is the delta state by type index (delta mode only).
	dtypes [4]*deltaTypeState
}

func newProxy(c *Client, i int, namespaces []string) *proxy {
	cfg := c.cfg
	ip := proxyIP(i)
	ns, pod := cfg.Namespace, fmt.Sprintf("load-%d", i)
	kind, cluster := "sidecar", "load."+ns
	labels := map[string]any{"app": "load", "version": "v1"}
	md := map[string]any{
		"INSTANCE_IPS":    ip,
		"SERVICE_ACCOUNT": cfg.ServiceAccount,
		"CLUSTER_ID":      cfg.ClusterID,
	}
	switch {
	case cfg.Router:
		kind, labels = "router", map[string]any{"istio": "ingressgateway"}
	case !cfg.SameLabels:
		// A replica of a Deployment, as pilot-agent describes its pod.
		w := WorkloadOf(cfg.WorkloadPrefix, i%cfg.Workloads, namespaces)
		ns, pod, cluster = w.Namespace, w.PodName(i), w.Name+"."+w.Namespace
		labels = map[string]any{}
		for k, v := range w.Labels() {
			labels[k] = v
		}
		md["WORKLOAD_NAME"] = w.Name
		if cfg.IstioVersion != "-" {
			md["ISTIO_VERSION"] = cfg.IstioVersion
		}
		md["OWNER"] = fmt.Sprintf("kubernetes://apis/apps/v1/namespaces/%s/deployments/%s", ns, w.Name)
	}
	md["NAMESPACE"] = ns
	md["LABELS"] = labels
	id := fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", kind, ip, pod, ns, ns)
	mds, err := structpb.NewStruct(md)
	if err != nil {
		panic(err) // only strings and maps of strings: cannot fail
	}
	return &proxy{
		c:   c,
		idx: i,
		id:  id,
		node: &core.Node{
			Id:            id,
			Cluster:       cluster,
			Metadata:      mds,
			UserAgentName: "xdsload",
		},
		types: map[string]*typeState{},
	}
}

// proxyIP synthesizes 10.<1+i/65536>.<i/256%256>.<i%256> for i+1, so 10.1.0.1 is the first.
func proxyIP(i int) string {
	n := i + 1
	return fmt.Sprintf("10.%d.%d.%d", 1+n/65536, n/256%256, n%256)
}

func (p *proxy) state(typ string) *typeState {
	ts := p.types[typ]
	if ts == nil {
		ts = &typeState{}
		p.types[typ] = ts
	}
	return ts
}

func (p *proxy) status() ProxyStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := ProxyStatus{
		Index:         p.idx,
		ID:            p.id,
		FirstStreamAt: p.firstStreamAt,
		FullConfigAt:  p.fullConfigAt,
		Streams:       p.streams,
		Types:         make(map[string]TypeStatus, len(p.types)),
		History:       slices.Clone(p.history),
	}
	if p.c.cfg.Delta {
		p.deltaStatusLocked(&st)
		return st
	}
	for typ, ts := range p.types {
		st.Types[typ] = TypeStatus{
			Version:    ts.lastVer,
			Names:      slices.Clone(ts.names),
			Acks:       ts.acks,
			FirstAckAt: ts.firstAckAt,
			LastAckAt:  ts.lastAckAt,
		}
	}
	return st
}

// run keeps one ADS stream (SotW or delta) open until ctx is done, re-opening
// it with backoff.
func (p *proxy) run(ctx context.Context, conn grpc.ClientConnInterface) {
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	log := p.c.cfg.Logger
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		var err error
		if p.c.cfg.Delta {
			err = p.deltaStream(ctx, conn)
		} else {
			err = p.stream(ctx, ads)
		}
		if ctx.Err() != nil {
			return
		}
		p.c.streamErrors.Add(1)
		log.Warn("ads stream ended; reconnecting", "proxy", p.id, "err", err, "backoff", backoff)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type adsStream = discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient

func (p *proxy) stream(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := ads.StreamAggregatedResources(sctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	now := time.Now()
	if p.firstStreamAt.IsZero() {
		p.firstStreamAt = now
	}
	p.streams++
	// A new stream starts fresh, like a restarted Envoy: no versions, no nonces.
	for _, ts := range p.types {
		ts.requested, ts.names, ts.version, ts.nonce, ts.ackedOnce = false, nil, "", "", false
	}
	p.state(TypeCDS).requested = true
	p.state(TypeLDS).requested = true
	p.mu.Unlock()

	// Node on the first message only, as Istio's bootstrap configures Envoy.
	if err := st.Send(&discovery.DiscoveryRequest{Node: p.node, TypeUrl: TypeCDS}); err != nil {
		return err
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: TypeLDS}); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if err := p.handle(st, resp, time.Now()); err != nil {
			return err
		}
	}
}

// handle ACKs one response, subscribes to what it names and records the timings.
func (p *proxy) handle(st adsStream, resp *discovery.DiscoveryResponse, recvAt time.Time) error {
	c := p.c
	c.responses.Add(1)
	c.bytes.Add(int64(proto.Size(resp)))
	typ := resp.GetTypeUrl()

	var (
		derivedType  string
		derivedNames []string
		derr         error
	)
	switch typ {
	case TypeCDS:
		derivedType = TypeEDS
		derivedNames, derr = EDSClusterNames(resp.GetResources())
	case TypeLDS:
		derivedType = TypeRDS
		derivedNames, derr = RDSRouteNames(resp.GetResources())
	}
	if derr != nil {
		c.decodeErrors.Add(1)
		c.cfg.Logger.Warn("decode error (ACKing anyway)", "proxy", p.id, "type", ShortType(typ), "err", derr)
	}

	p.mu.Lock()
	ts := p.state(typ)
	ack := &discovery.DiscoveryRequest{
		TypeUrl:       typ,
		VersionInfo:   resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(),
		ResourceNames: slices.Clone(ts.names),
	}
	p.mu.Unlock()
	if err := st.Send(ack); err != nil {
		return err
	}
	ackAt := time.Now()
	c.acks.Add(1)

	p.mu.Lock()
	newVersion := ts.acks == 0 || ts.lastVer != resp.GetVersionInfo()
	ts.version, ts.nonce, ts.lastVer = resp.GetVersionInfo(), resp.GetNonce(), resp.GetVersionInfo()
	ts.ackedOnce = true
	ts.acks++
	if ts.firstAckAt.IsZero() {
		ts.firstAckAt = ackAt
	}
	ts.lastAckAt = ackAt
	if newVersion && len(p.history) < maxHistory {
		p.history = append(p.history, AckRecord{Type: typ, Version: resp.GetVersionInfo(), At: ackAt})
	}
	var sub *discovery.DiscoveryRequest
	if derivedType != "" && len(derivedNames) > 0 {
		dts := p.state(derivedType)
		if !dts.requested || !slices.Equal(dts.names, derivedNames) {
			dts.requested = true
			dts.names = derivedNames
			sub = &discovery.DiscoveryRequest{
				TypeUrl:       derivedType,
				VersionInfo:   dts.version,
				ResponseNonce: dts.nonce,
				ResourceNames: slices.Clone(derivedNames),
			}
		}
	}
	becameFull := p.fullConfigAt.IsZero() && p.hasFullConfigLocked()
	if becameFull {
		p.fullConfigAt = ackAt
	}
	p.mu.Unlock()

	p.acked(becameFull, newVersion, recvAt, ackAt)
	if sub != nil {
		return st.Send(sub)
	}
	return nil
}

// acked does the fleet-wide bookkeeping of one ACK: the first full config,
// and the convergence of the measured change if the response came after it.
func (p *proxy) acked(becameFull, newVersion bool, recvAt, ackAt time.Time) {
	c := p.c
	if becameFull {
		c.fullCount.Add(1)
		select {
		case c.fullNotify <- struct{}{}:
		default:
		}
	}
	if newVersion {
		if r := c.round.Load(); r != nil && !recvAt.Before(r.start) {
			r.observe(p.idx, ackAt)
		}
	}
}

// hasFullConfigLocked: CDS and LDS ACKed on this stream, and EDS/RDS ACKed if
// anything of them is subscribed (a config without EDS clusters or RDS routes
// needs none).
func (p *proxy) hasFullConfigLocked() bool {
	ok := func(typ string) bool {
		ts := p.types[typ]
		return ts != nil && ts.ackedOnce
	}
	needs := func(typ string) bool {
		ts := p.types[typ]
		return ts != nil && ts.requested
	}
	return ok(TypeCDS) && ok(TypeLDS) &&
		(!needs(TypeEDS) || ok(TypeEDS)) &&
		(!needs(TypeRDS) || ok(TypeRDS))
}
