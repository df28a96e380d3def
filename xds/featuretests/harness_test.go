package featuretests

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
	"github.com/mizzenmesh/mizzen/xds"
)

// harness is a real xDS server on a real gRPC server listening on 127.0.0.1:0,
// set up as mizzen serve sets it up (xds.New, Register, Run, xds.Codec).
type harness struct {
	t       *testing.T
	srv     *xds.Server
	reg     *prometheus.Registry
	addr    string
	version uint64
	snap    *model.Snapshot
}

// syncBuffer collects the server's log; it is printed when the test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T, opts ...func(*xds.Options)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	o := xds.Options{
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: xds.NewMetrics(reg),
	}
	for _, f := range opts {
		f(&o)
	}
	srv := xds.New(o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The xDS port's codec, as mizzen serve installs it.
	g := grpc.NewServer(grpc.ForceServerCodecV2(xds.Codec{}))
	srv.Register(ctx, g)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	go func() { defer wg.Done(); srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		g.Stop()
		wg.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &harness{t: t, srv: srv, reg: reg, addr: lis.Addr().String()}
}

// update builds a snapshot of in, hands it to the server and waits until the
// server has pushed it to every connected proxy (pilot_xds_push_time counts one
// more push), so a proxy that connects afterwards gets it as initial config.
func (h *harness) update(in *model.Inputs) *model.Snapshot {
	h.t.Helper()
	pushed := h.pushCount()
	h.version++
	snap := model.Build(in, h.version)
	for _, e := range snap.Errors {
		if !e.Warning {
			h.t.Fatalf("fixture has a config error: %+v", e)
		}
	}
	h.snap = snap
	h.srv.Update(snap)
	eventually(h.t, "the server pushed the new snapshot", func() bool { return h.pushCount() > pushed })
	return snap
}

// pushCount is how many pushes the server has finished (all triggers).
func (h *harness) pushCount() uint64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "pilot_xds_push_time" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// start serves the first snapshot and waits until the server is ready for proxies.
func (h *harness) start(in *model.Inputs) *model.Snapshot {
	h.t.Helper()
	snap := h.update(in)
	eventually(h.t, "the server is ready", h.srv.Ready)
	return snap
}

func (h *harness) connect(n *core.Node, opts ...clientOption) *client {
	h.t.Helper()
	return connect(h.t, h.addr, n, opts...)
}

// syncStatus returns the sync status of one proxy (ok false: not connected).
func (h *harness) syncStatus(id string) (xds.ProxySyncStatus, bool) {
	for _, ps := range h.srv.SyncStatus() {
		if ps.ProxyID == id {
			return ps, true
		}
	}
	return xds.ProxySyncStatus{}, false
}

// metric reads the value of a counter or gauge labelled type=typeLabel.
func (h *harness) metric(name, typeLabel string) float64 {
	h.t.Helper()
	return h.metricWith(name, "type", typeLabel)
}

// metricWith reads the value of a counter or gauge with the given label.
func (h *harness) metricWith(name, label, value string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func (h *harness) pushes() map[string]float64 {
	out := map[string]float64{}
	for _, typ := range []string{"cds", "eds", "lds", "rds"} {
		out[typ] = h.metric("pilot_xds_pushes", typ)
	}
	return out
}

// eventually polls cond every few milliseconds for at most waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectConfig compares what the client holds with translate.ForProxy, the
// reference output for the proxy, as sets by name with proto.Equal.
func expectConfig(t testing.TB, c *client, snap *model.Snapshot) {
	t.Helper()
	expectConfigOf(t, c.node, c.config(), snap)
}

// expectConfigOf compares what a client of node holds (by type and name) with
// translate.ForProxy.
func expectConfigOf(t testing.TB, n *core.Node, got map[string]map[string]proto.Message, snap *model.Snapshot) {
	t.Helper()
	p, err := model.ParseProxy(n.GetId(), n.GetMetadata().AsMap())
	if err != nil {
		t.Fatal(err)
	}
	want := translate.ForProxy(snap, p)
	compareSet(t, "clusters", got[CDS], byName(want.Clusters, func(m proto.Message) string { return m.(interface{ GetName() string }).GetName() }))
	compareSet(t, "endpoints", got[EDS], byName(want.Endpoints, func(m proto.Message) string { return m.(interface{ GetClusterName() string }).GetClusterName() }))
	compareSet(t, "listeners", got[LDS], byName(want.Listeners, func(m proto.Message) string { return m.(interface{ GetName() string }).GetName() }))
	compareSet(t, "routes", got[RDS], byName(want.Routes, func(m proto.Message) string { return m.(interface{ GetName() string }).GetName() }))
}

func byName[M proto.Message](msgs []M, name func(proto.Message) string) map[string]proto.Message {
	out := map[string]proto.Message{}
	for _, m := range msgs {
		out[name(m)] = m
	}
	return out
}

func compareSet(t testing.TB, what string, got, want map[string]proto.Message) {
	t.Helper()
	if len(want) == 0 {
		t.Errorf("%s: the reference output is empty; the fixture is wrong", what)
	}
	for _, n := range sortedKeys(want) {
		g, ok := got[n]
		if !ok {
			t.Errorf("%s: missing %q", what, n)
			continue
		}
		if !proto.Equal(g, want[n]) {
			t.Errorf("%s: %q differs\n got: %s\nwant: %s", what, n, prototext.Format(g), prototext.Format(want[n]))
		}
	}
	for _, n := range sortedKeys(got) {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: unexpected %q", what, n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- mesh fixtures: Kubernetes and Istio objects as Go values ----

func service(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Ports: ports, Selector: map[string]string{"app": name}},
	}
}

func port(name string, n int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: n, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(n)}
}

// endpoint is one ready pod address of a slice.
type endpoint struct {
	ip, pod string
}

// slice is the EndpointSlice of a service with one port named like the service port.
func slice(ns, svc, portName string, target int32, eps ...endpoint) *discoveryv1.EndpointSlice {
	ready := true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-abcde", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &target}},
	}
	for _, ep := range eps {
		e := discoveryv1.Endpoint{Addresses: []string{ep.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
		if ep.pod != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: ep.pod}
		}
		es.Endpoints = append(es.Endpoints, e)
	}
	return es
}

func pod(ns, name, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{ServiceAccountName: "default"},
		Status:     corev1.PodStatus{PodIP: ip},
	}
}

// Addresses of the mesh below: the client pod 10.1.0.9 serves the "client"
// service, so its sidecar gets inbound config too.
const clientIP = "10.1.0.9"

// bookinfo is a small mesh: HTTP services on 9080 (reviews with two subsets and
// a VirtualService sending everything to v1), a TCP service, and the client's
// own service.
func bookinfo() *model.Inputs {
	return &model.Inputs{
		Services: []*corev1.Service{
			service("default", "productpage", "10.96.0.10", port("http", 9080)),
			service("default", "reviews", "10.96.0.11", port("http", 9080)),
			service("default", "details", "10.96.0.12", port("http", 9080)),
			service("default", "mysql", "10.96.0.13", port("tcp-mysql", 3306)),
			service("default", "client", "10.96.0.14", port("http", 8000)),
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			slice("default", "productpage", "http", 9080, endpoint{"10.1.1.1", "productpage-0"}),
			slice("default", "reviews", "http", 9080, endpoint{"10.1.2.1", "reviews-v1-0"}, endpoint{"10.1.2.2", "reviews-v2-0"}),
			slice("default", "details", "http", 9080, endpoint{"10.1.3.1", "details-0"}),
			slice("default", "mysql", "tcp-mysql", 3306, endpoint{"10.1.4.1", "mysql-0"}),
			slice("default", "client", "http", 8000, endpoint{clientIP, "client-0"}),
		},
		Pods: []*corev1.Pod{
			pod("default", "productpage-0", "10.1.1.1", map[string]string{"app": "productpage"}),
			pod("default", "reviews-v1-0", "10.1.2.1", map[string]string{"app": "reviews", "version": "v1"}),
			pod("default", "reviews-v2-0", "10.1.2.2", map[string]string{"app": "reviews", "version": "v2"}),
			pod("default", "details-0", "10.1.3.1", map[string]string{"app": "details"}),
			pod("default", "mysql-0", "10.1.4.1", map[string]string{"app": "mysql"}),
			pod("default", "client-0", clientIP, map[string]string{"app": "client"}),
		},
		DestinationRules: []*networking.DestinationRule{{
			ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"},
			Spec: networkingapi.DestinationRule{
				Host: "reviews",
				Subsets: []*networkingapi.Subset{
					{Name: "v1", Labels: map[string]string{"version": "v1"}},
					{Name: "v2", Labels: map[string]string{"version": "v2"}},
				},
			},
		}},
		VirtualServices: []*networking.VirtualService{reviewsTo("v1")},
	}
}

// reviewsTo is a VirtualService sending all reviews traffic to one subset.
func reviewsTo(subset string) *networking.VirtualService {
	return &networking.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"},
		Spec: networkingapi.VirtualService{
			Hosts: []string{"reviews"},
			Http: []*networkingapi.HTTPRoute{{
				Name:  "to-" + subset,
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "reviews", Subset: subset}}},
			}},
		},
	}
}

// clientNode is the sidecar of the client pod in bookinfo.
func clientNode() *core.Node {
	return sidecarNode(clientIP, "client-0", "default", map[string]string{"app": "client"})
}
