package featuretests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The four types, by their short names as used in istiod's metrics.
const (
	CDS = resourcev3.ClusterType
	EDS = resourcev3.EndpointType
	LDS = resourcev3.ListenerType
	RDS = resourcev3.RouteType
)

var shortNames = map[string]string{CDS: "cds", EDS: "eds", LDS: "lds", RDS: "rds"}

func short(typeURL string) string {
	if s, ok := shortNames[typeURL]; ok {
		return s
	}
	return typeURL
}

// waitTimeout bounds every wait for a response that must come.
const waitTimeout = 5 * time.Second

// quiet is how long a test listens to be sure nothing more is coming.
const quiet = 300 * time.Millisecond

// node builds an Envoy node with an Istio node ID and Istio's node metadata.
func node(kind, ip, pod, ns string, labels map[string]string) *core.Node {
	l := map[string]any{}
	for k, v := range labels {
		l[k] = v
	}
	md, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":       ns,
		"LABELS":          l,
		"INSTANCE_IPS":    ip,
		"SERVICE_ACCOUNT": "default",
		"CLUSTER_ID":      "Kubernetes",
		"ISTIO_VERSION":   "1.31.1",
	})
	if err != nil {
		panic(err)
	}
	return &core.Node{
		Id:       fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", kind, ip, pod, ns, ns),
		Cluster:  pod + "." + ns,
		Metadata: md,
	}
}

func sidecarNode(ip, pod, ns string, labels map[string]string) *core.Node {
	return node("sidecar", ip, pod, ns, labels)
}

// typeState is what the client holds of one type on the current stream.
type typeState struct {
	requested bool
	names     []string // subscription; nil for wildcard
	nonce     string   // of the last response received
	version   string   // last ACKed
	last      *discovery.DiscoveryResponse
	resources map[string]*anypb.Any // of the last ACKed response
}

// client is a plain gRPC ADS client (state of the world) that the test drives
// step by step: it sends exactly what the test asks for and reports every
// response in arrival order.
type client struct {
	t      testing.TB
	node   *core.Node
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient

	sentNode bool
	types    map[string]*typeState
	// received lists the short type names of every response, in arrival order.
	received []string

	resps chan *discovery.DiscoveryResponse
	done  chan struct{} // closed when the stream's receive side ends
	mu    sync.Mutex
	err   error // why the receive side ended
}

type clientOption func(*clientOptions)

type clientOptions struct {
	noRead   bool
	dialOpts []grpc.DialOption
}

// neverRead makes the client open its stream but never read from it, with the
// smallest static HTTP/2 windows, so the server's sends block once they fill.
func neverRead() clientOption {
	return func(o *clientOptions) {
		o.noRead = true
		o.dialOpts = append(o.dialOpts, grpc.WithInitialWindowSize(64*1024), grpc.WithInitialConnWindowSize(64*1024))
	}
}

// connect dials the server and opens an ADS stream; nothing is sent yet.
func connect(t testing.TB, addr string, n *core.Node, opts ...clientOption) *client {
	t.Helper()
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, o.dialOpts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatalf("open ADS stream: %v", err)
	}
	c := &client{
		t: t, node: n, conn: conn, cancel: cancel, stream: stream,
		types: map[string]*typeState{},
		resps: make(chan *discovery.DiscoveryResponse, 1024),
		done:  make(chan struct{}),
	}
	if o.noRead {
		close(c.done)
	} else {
		go c.recvLoop(ctx)
	}
	t.Cleanup(c.close)
	return c
}

func (c *client) recvLoop(ctx context.Context) {
	defer close(c.done)
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		select {
		case c.resps <- resp:
		case <-ctx.Done():
			return
		}
	}
}

// close ends the stream and the connection (idempotent).
func (c *client) close() {
	c.cancel()
	c.conn.Close()
	<-c.done
}

func (c *client) state(typeURL string) *typeState {
	ts := c.types[typeURL]
	if ts == nil {
		ts = &typeState{}
		c.types[typeURL] = ts
	}
	return ts
}

func (c *client) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	if !c.sentNode {
		req.Node = c.node // the node goes on the first request only, as Envoy does
		c.sentNode = true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("%s: send %s request: %v", c.node.GetId(), short(req.GetTypeUrl()), err)
	}
}

// subscribe sends a request for names (none: wildcard) carrying the client's
// current version and nonce of the type, as Envoy does on a subscription change.
func (c *client) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	ts := c.state(typeURL)
	ts.requested = true
	ts.names = names
	c.send(&discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: ts.version, ResponseNonce: ts.nonce, ResourceNames: names})
}

// ack accepts resp.
func (c *client) ack(resp *discovery.DiscoveryResponse) {
	c.t.Helper()
	ts := c.state(resp.GetTypeUrl())
	ts.version = resp.GetVersionInfo()
	// Like Envoy: a CDS/LDS response is the whole state; an EDS/RDS response
	// carries only what changed and leaves the other subscribed resources as
	// they are (those no longer subscribed are dropped).
	switch resp.GetTypeUrl() {
	case resourcev3.ClusterType, resourcev3.ListenerType:
		ts.resources = map[string]*anypb.Any{}
	default:
		keep := map[string]bool{}
		for _, n := range ts.names {
			keep[n] = true
		}
		for n := range ts.resources {
			if !keep[n] {
				delete(ts.resources, n)
			}
		}
	}
	if ts.resources == nil {
		ts.resources = map[string]*anypb.Any{}
	}
	for _, r := range resp.GetResources() {
		ts.resources[resourceName(c.t, r)] = r
	}
	c.send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: ts.names})
}

// nack rejects resp: the version stays the last accepted one, error_detail says why.
func (c *client) nack(resp *discovery.DiscoveryResponse, msg string) {
	c.t.Helper()
	ts := c.state(resp.GetTypeUrl())
	c.send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: ts.version, ResponseNonce: resp.GetNonce(), ResourceNames: ts.names,
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}})
}

// recv waits for the next response (at most waitTimeout) and records its nonce.
func (c *client) recv() *discovery.DiscoveryResponse {
	c.t.Helper()
	resp, err := c.tryRecv(waitTimeout)
	if err != nil {
		c.t.Fatalf("%s: %v (received so far: %v)", c.node.GetId(), err, c.received)
	}
	return resp
}

var errTimeout = errors.New("timed out waiting for a response")

func (c *client) tryRecv(d time.Duration) (*discovery.DiscoveryResponse, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case resp := <-c.resps:
		c.note(resp)
		return resp, nil
	case <-c.done:
		// Deliver what arrived before the stream ended first.
		select {
		case resp := <-c.resps:
			c.note(resp)
			return resp, nil
		default:
		}
		return nil, fmt.Errorf("stream ended: %w", c.streamErr())
	case <-timer.C:
		return nil, errTimeout
	}
}

func (c *client) note(resp *discovery.DiscoveryResponse) {
	c.state(resp.GetTypeUrl()).nonce = resp.GetNonce()
	c.state(resp.GetTypeUrl()).last = resp
	c.received = append(c.received, short(resp.GetTypeUrl()))
}

func (c *client) streamErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// expect receives the next response and checks its type.
func (c *client) expect(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	resp := c.recv()
	if resp.GetTypeUrl() != typeURL {
		c.t.Fatalf("%s: got a %s response (version %s), want %s; received so far: %v", c.node.GetId(), short(resp.GetTypeUrl()), resp.GetVersionInfo(), short(typeURL), c.received)
	}
	return resp
}

// expectNone checks that no response arrives within d.
func (c *client) expectNone(d time.Duration) {
	c.t.Helper()
	resp, err := c.tryRecv(d)
	if err == nil {
		c.t.Fatalf("%s: got an unexpected %s response (version %s, %d resources: %v); received so far: %v",
			c.node.GetId(), short(resp.GetTypeUrl()), resp.GetVersionInfo(), len(resp.GetResources()), names(c.t, resp), c.received)
	}
	if !errors.Is(err, errTimeout) {
		c.t.Fatalf("%s: %v", c.node.GetId(), err)
	}
}

// start sends Envoy's first requests: CDS and LDS, both wildcard.
func (c *client) start() {
	c.t.Helper()
	c.subscribe(CDS)
	c.subscribe(LDS)
}

// handle reacts to a response as Envoy does: ACK it, then subscribe to the
// endpoints of the EDS clusters a CDS response names, and to the route tables
// of the listeners an LDS response names.
func (c *client) handle(resp *discovery.DiscoveryResponse) {
	c.t.Helper()
	c.ack(resp)
	var want []string
	var dep string
	switch resp.GetTypeUrl() {
	case CDS:
		dep, want = EDS, edsNames(c.t, resp)
	case LDS:
		dep, want = RDS, rdsNames(c.t, resp)
	default:
		return
	}
	ts := c.state(dep)
	if ts.requested && slices.Equal(ts.names, want) {
		return
	}
	if !ts.requested && len(want) == 0 {
		return
	}
	c.subscribe(dep, want...)
}

// syncUntil handles responses like Envoy until done reports true (checked before
// every receive, and after every response).
func (c *client) syncUntil(what string, done func() bool) {
	c.t.Helper()
	followUntil(c.t, c.node.GetId(), what, done, func() []string { return c.received }, func(left time.Duration) error {
		resp, err := c.tryRecv(left)
		if err == nil {
			c.handle(resp)
		}
		return err
	})
}

// followUntil runs step (receive and handle one response, waiting at most
// left) until done reports true (checked before every step), failing the test
// after waitTimeout; received lists what came so far, for the message.
func followUntil(t testing.TB, who, what string, done func() bool, received func() []string, step func(left time.Duration) error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !done() {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: timed out waiting until %s; received: %v", who, what, received())
		}
		if err := step(left); err != nil {
			t.Fatalf("%s: waiting until %s: %v; received: %v", who, what, err, received())
		}
	}
}

// complete reports whether the client ACKed CDS and LDS and holds every endpoint
// and route table they refer to.
func (c *client) complete() bool {
	for _, typeURL := range []string{CDS, LDS} {
		if c.state(typeURL).resources == nil {
			return false
		}
	}
	for _, dep := range []string{EDS, RDS} {
		ts := c.state(dep)
		for _, n := range ts.names {
			if _, ok := ts.resources[n]; !ok {
				return false
			}
		}
	}
	return true
}

// syncFull runs start and handles responses until the client is complete.
func (c *client) syncFull() {
	c.t.Helper()
	c.start()
	c.syncUntil("it holds full config", c.complete)
}

// has reports whether the client ACKed a resource of the type with that name.
func (c *client) has(typeURL, name string) bool {
	_, ok := c.state(typeURL).resources[name]
	return ok
}

// resource unmarshals the ACKed resource of the type with that name (nil: none).
func (c *client) resource(typeURL, name string) proto.Message {
	c.t.Helper()
	a, ok := c.state(typeURL).resources[name]
	if !ok {
		return nil
	}
	return unmarshal(c.t, a)
}

// config returns everything the client ACKed, by type and name.
func (c *client) config() map[string]map[string]proto.Message {
	c.t.Helper()
	out := map[string]map[string]proto.Message{}
	for _, typeURL := range []string{CDS, EDS, LDS, RDS} {
		out[typeURL] = map[string]proto.Message{}
		for name, a := range c.state(typeURL).resources {
			out[typeURL][name] = unmarshal(c.t, a)
		}
	}
	return out
}

func unmarshal(t testing.TB, a *anypb.Any) proto.Message {
	t.Helper()
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("unmarshal %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

func resourceName(t testing.TB, a *anypb.Any) string {
	t.Helper()
	switch m := unmarshal(t, a).(type) {
	case *clusterv3.Cluster:
		return m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	case *listenerv3.Listener:
		return m.GetName()
	case *routev3.RouteConfiguration:
		return m.GetName()
	case *tlsv3.Secret:
		return m.GetName()
	default:
		t.Fatalf("unexpected resource type %s", a.GetTypeUrl())
		return ""
	}
}

// names lists the resource names of a response, sorted.
func names(t testing.TB, resp *discovery.DiscoveryResponse) []string {
	var out []string
	for _, r := range resp.GetResources() {
		out = append(out, resourceName(t, r))
	}
	sort.Strings(out)
	return out
}

// edsNames lists the EDS service names of the EDS clusters in a CDS response.
func edsNames(t testing.TB, resp *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, r := range resp.GetResources() {
		cl := unmarshal(t, r).(*clusterv3.Cluster)
		if cl.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := cl.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = cl.GetName()
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// rdsNames lists the route tables the HTTP connection managers of an LDS response load over RDS.
func rdsNames(t testing.TB, resp *discovery.DiscoveryResponse) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range resp.GetResources() {
		l := unmarshal(t, r).(*listenerv3.Listener)
		chains := append([]*listenerv3.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				if !strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), "HttpConnectionManager") {
					continue
				}
				hcm := unmarshal(t, f.GetTypedConfig()).(*hcmv3.HttpConnectionManager)
				if name := hcm.GetRds().GetRouteConfigName(); name != "" {
					seen[name] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
