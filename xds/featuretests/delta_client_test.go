package featuretests

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// deltaClient is a plain gRPC incremental (delta) ADS client, driven step by
// step like client: it holds what Envoy would hold (resources by name with
// their versions, removals applied) and sends exactly what the test asks for.
// go-control-plane has no delta client, so this is the protocol as the xDS
// spec and Envoy's grpc_mux_impl speak it.
type deltaClient struct {
	t      testing.TB
	node   *core.Node
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient

	sentNode bool
	types    map[string]*deltaTypeState
	received []string

	resps chan *discovery.DeltaDiscoveryResponse
	done  chan struct{}
	mu    sync.Mutex
	err   error
}

type deltaTypeState struct {
	requested  bool
	subscribed map[string]bool // nil: wildcard
	resources  map[string]deltaHeld
	last       *discovery.DeltaDiscoveryResponse
}

type deltaHeld struct {
	version string
	any     *anypb.Any
}

func connectDelta(t testing.TB, addr string, n *core.Node) *deltaClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatalf("open delta ADS stream: %v", err)
	}
	c := &deltaClient{t: t, node: n, conn: conn, cancel: cancel, stream: stream, types: map[string]*deltaTypeState{},
		resps: make(chan *discovery.DeltaDiscoveryResponse, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			resp, err := stream.Recv()
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
	}()
	t.Cleanup(c.close)
	return c
}

func (h *harness) connectDelta(n *core.Node) *deltaClient {
	h.t.Helper()
	return connectDelta(h.t, h.addr, n)
}

func (c *deltaClient) close() {
	c.cancel()
	c.conn.Close()
	<-c.done
}

func (c *deltaClient) state(typeURL string) *deltaTypeState {
	ts := c.types[typeURL]
	if ts == nil {
		ts = &deltaTypeState{resources: map[string]deltaHeld{}}
		c.types[typeURL] = ts
	}
	return ts
}

func (c *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	if !c.sentNode {
		req.Node = c.node
		c.sentNode = true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("%s: send delta %s request: %v", c.node.GetId(), short(req.GetTypeUrl()), err)
	}
}

// subscribe starts or extends the subscription of a type: no names on the
// first request is Envoy's (legacy) wildcard. initial, on a first request, are
// the versions the client says it already holds.
func (c *deltaClient) subscribe(typeURL string, names []string, initial map[string]string) {
	c.t.Helper()
	ts := c.state(typeURL)
	if !ts.requested && len(names) == 0 {
		ts.subscribed = nil
	} else {
		if ts.subscribed == nil {
			ts.subscribed = map[string]bool{}
		}
		for _, n := range names {
			ts.subscribed[n] = true
		}
	}
	ts.requested = true
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names, InitialResourceVersions: initial})
}

// unsubscribe drops names from a named subscription; Envoy forgets them at once.
func (c *deltaClient) unsubscribe(typeURL string, names ...string) {
	c.t.Helper()
	ts := c.state(typeURL)
	for _, n := range names {
		delete(ts.subscribed, n)
		delete(ts.resources, n)
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesUnsubscribe: names})
}

// ack applies resp (updates and removals) and acknowledges it.
func (c *deltaClient) ack(resp *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	ts := c.state(resp.GetTypeUrl())
	for _, r := range resp.GetResources() {
		ts.resources[r.GetName()] = deltaHeld{version: r.GetVersion(), any: r.GetResource()}
	}
	for _, n := range resp.GetRemovedResources() {
		delete(ts.resources, n)
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

// nack rejects resp; nothing of it is applied.
func (c *deltaClient) nack(resp *discovery.DeltaDiscoveryResponse, msg string) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}})
}

func (c *deltaClient) tryRecv(d time.Duration) (*discovery.DeltaDiscoveryResponse, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case resp := <-c.resps:
		c.note(resp)
		return resp, nil
	case <-c.done:
		select {
		case resp := <-c.resps:
			c.note(resp)
			return resp, nil
		default:
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, fmt.Errorf("stream ended: %w", c.err)
	case <-timer.C:
		return nil, errTimeout
	}
}

func (c *deltaClient) note(resp *discovery.DeltaDiscoveryResponse) {
	c.state(resp.GetTypeUrl()).last = resp
	c.received = append(c.received, short(resp.GetTypeUrl()))
}

func (c *deltaClient) expect(typeURL string) *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	resp, err := c.tryRecv(waitTimeout)
	if err != nil {
		c.t.Fatalf("%s: %v (received so far: %v)", c.node.GetId(), err, c.received)
	}
	if resp.GetTypeUrl() != typeURL {
		c.t.Fatalf("%s: got a delta %s response (%d resources, removed %v), want %s; received so far: %v",
			c.node.GetId(), short(resp.GetTypeUrl()), len(resp.GetResources()), resp.GetRemovedResources(), short(typeURL), c.received)
	}
	return resp
}

func (c *deltaClient) expectNone(d time.Duration) {
	c.t.Helper()
	resp, err := c.tryRecv(d)
	if err == nil {
		c.t.Fatalf("%s: got an unexpected delta %s response (%d resources %v, removed %v); received so far: %v",
			c.node.GetId(), short(resp.GetTypeUrl()), len(resp.GetResources()), deltaNames(resp), resp.GetRemovedResources(), c.received)
	}
	if err != errTimeout {
		c.t.Fatalf("%s: %v", c.node.GetId(), err)
	}
}

// handle reacts like Envoy: apply and ACK, then subscribe to the endpoints and
// route tables that clusters and listeners name and are not yet subscribed.
func (c *deltaClient) handle(resp *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.ack(resp)
	var dep string
	var want []string
	switch resp.GetTypeUrl() {
	case CDS:
		dep = EDS
		want = edsNames(c.t, &discovery.DiscoveryResponse{Resources: c.anys(CDS)})
	case LDS:
		dep = RDS
		want = rdsNames(c.t, &discovery.DiscoveryResponse{Resources: c.anys(LDS)})
	default:
		return
	}
	ts := c.state(dep)
	var add, drop []string
	wanted := map[string]bool{}
	for _, n := range want {
		wanted[n] = true
		if !ts.subscribed[n] {
			add = append(add, n)
		}
	}
	for n := range ts.subscribed {
		if !wanted[n] {
			drop = append(drop, n)
		}
	}
	sort.Strings(drop)
	if len(drop) > 0 {
		c.unsubscribe(dep, drop...)
	}
	if len(add) > 0 {
		c.subscribe(dep, add, nil)
	}
}

func (c *deltaClient) anys(typeURL string) []*anypb.Any {
	var out []*anypb.Any
	for _, h := range c.state(typeURL).resources {
		out = append(out, h.any)
	}
	return out
}

func (c *deltaClient) syncUntil(what string, done func() bool) {
	c.t.Helper()
	followUntil(c.t, c.node.GetId(), what, done, func() []string { return c.received }, func(left time.Duration) error {
		resp, err := c.tryRecv(left)
		if err == nil {
			c.handle(resp)
		}
		return err
	})
}

// complete: CDS and LDS answered, and every subscribed endpoint and route table held.
func (c *deltaClient) complete() bool {
	for _, typeURL := range []string{CDS, LDS} {
		if c.state(typeURL).last == nil {
			return false
		}
	}
	for _, dep := range []string{EDS, RDS} {
		ts := c.state(dep)
		for n := range ts.subscribed {
			if _, ok := ts.resources[n]; !ok {
				return false
			}
		}
	}
	return true
}

// syncFull subscribes to CDS and LDS (wildcard) and follows until complete.
func (c *deltaClient) syncFull() {
	c.t.Helper()
	c.subscribe(CDS, nil, nil)
	c.subscribe(LDS, nil, nil)
	c.syncUntil("it holds full config", c.complete)
}

func (c *deltaClient) has(typeURL, name string) bool {
	_, ok := c.state(typeURL).resources[name]
	return ok
}

func (c *deltaClient) resource(typeURL, name string) proto.Message {
	c.t.Helper()
	h, ok := c.state(typeURL).resources[name]
	if !ok {
		return nil
	}
	return unmarshal(c.t, h.any)
}

// versions is what a reconnecting Envoy sends as initial_resource_versions.
func (c *deltaClient) versions(typeURL string) map[string]string {
	out := map[string]string{}
	for n, h := range c.state(typeURL).resources {
		out[n] = h.version
	}
	return out
}

func (c *deltaClient) config() map[string]map[string]proto.Message {
	c.t.Helper()
	out := map[string]map[string]proto.Message{}
	for _, typeURL := range []string{CDS, EDS, LDS, RDS} {
		out[typeURL] = map[string]proto.Message{}
		for name, h := range c.state(typeURL).resources {
			out[typeURL][name] = unmarshal(c.t, h.any)
		}
	}
	return out
}

func deltaNames(resp *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range resp.GetResources() {
		out = append(out, r.GetName())
	}
	sort.Strings(out)
	return out
}
