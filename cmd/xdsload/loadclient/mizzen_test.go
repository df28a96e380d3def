package loadclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/xds"
)

// mizzenServer is mizzen's own xDS server (xds.New, its codec) in process.
type mizzenServer struct {
	t       *testing.T
	srv     *xds.Server
	addr    string
	version uint64
}

func startMizzen(t *testing.T) *mizzenServer {
	t.Helper()
	srv := xds.New(xds.Options{Logger: slog.New(slog.DiscardHandler), Metrics: xds.NewMetrics(prometheus.NewRegistry())})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := grpc.NewServer(grpc.ForceServerCodecV2(xds.Codec{}))
	srv.Register(ctx, g)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	go func() { defer wg.Done(); srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	return &mizzenServer{t: t, srv: srv, addr: lis.Addr().String()}
}

func (m *mizzenServer) update(in *model.Inputs) {
	m.t.Helper()
	m.version++
	snap := model.Build(in, m.version)
	for _, e := range snap.Errors {
		if !e.Warning {
			m.t.Fatalf("fixture has a config error: %+v", e)
		}
	}
	m.srv.Update(snap)
}

// benchMesh is genmesh's mesh in miniature: services svc-<i> in namespace
// bench (port 8080 http), each with an EndpointSlice of `endpoints` ready
// addresses (svc-1 one more when extra), svc-0 with subsets and a
// VirtualService w1/100-w1.
func benchMesh(services, endpoints int, extra bool, w1 int32) *model.Inputs {
	in := &model.Inputs{}
	ready := true
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench"},
			Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.100.%d.%d", i/256, i%256), Ports: []corev1.ServicePort{{
				Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
		})
		portName, port := "http", int32(8080)
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-gen", Namespace: "bench", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		n := endpoints
		if extra && i == 1 {
			n++
		}
		for j := range n {
			k := i*10 + j + 1
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.200.%d.%d", k/256, k%256)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	host := "svc-0.bench.svc.cluster.local"
	dr := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "svc-0", Namespace: "bench"}}
	dr.Spec.Host = host
	dr.Spec.Subsets = []*networkingapi.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}
	vs := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "svc-0", Namespace: "bench"}}
	vs.Spec.Hosts = []string{host}
	vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{
		{Weight: w1, Destination: &networkingapi.Destination{Host: host, Subset: "v1"}},
		{Weight: 100 - w1, Destination: &networkingapi.Destination{Host: host, Subset: "v2"}},
	}}}
	in.DestinationRules = []*networking.DestinationRule{dr}
	in.VirtualServices = []*networking.VirtualService{vs}
	return in
}

// Both modes against mizzen's own server: full initial config, then an
// endpoint change (delta: one ClusterLoadAssignment per proxy), a route
// change, and a removed service (delta: its cluster removed, its endpoints
// unsubscribed).
func TestModesAgainstMizzen(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			delta := mode != "sotw"
			m := startMizzen(t)
			const services, n = 20, 6
			m.update(benchMesh(services, 3, false, 90))
			c := startClientMode(t, m.addr, n, mode)
			ctx := context.Background()
			if r := c.WaitInitial(ctx, 10*time.Second); r.Converged != n {
				t.Fatalf("initial: converged %d of %d, failed %v", r.Converged, n, r.Failed)
			}
			// 20 services + 2 subsets of svc-0: 22 EDS clusters.
			const edsClusters = services + 2
			waitFor(t, "every proxy holds its EDS and RDS", func() bool {
				for _, st := range c.Status() {
					eds, rds := st.Types[loadclient.TypeEDS], st.Types[loadclient.TypeRDS]
					if len(eds.Names) != edsClusters || len(rds.Names) == 0 || (delta && (eds.Held != edsClusters || rds.Held != len(rds.Names))) {
						return false
					}
				}
				return true
			})
			quiet := func() {
				last := c.Counters().Responses
				for {
					time.Sleep(200 * time.Millisecond)
					cur := c.Counters().Responses
					if cur == last {
						return
					}
					last = cur
				}
			}
			quiet()
			measure := func(what string, in *model.Inputs) (loadclient.ChangeResult, loadclient.Counters) {
				t.Helper()
				before := c.Counters()
				res, err := c.MeasureChange(ctx, func(context.Context) error { m.update(in); return nil }, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if res.Converged != n {
					t.Fatalf("%s: converged %d of %d, failed %v", what, res.Converged, n, res.Failed)
				}
				quiet()
				after := c.Counters()
				return res, loadclient.Counters{Responses: after.Responses - before.Responses, Bytes: after.Bytes - before.Bytes}
			}

			// An endpoint change: one EDS response per proxy.
			start := time.Now()
			_, cnt := measure("endpoint change", benchMesh(services, 3, true, 90))
			if cnt.Responses != n {
				t.Errorf("endpoint change: %d responses, want %d (one EDS response per proxy)", cnt.Responses, n)
			}
			for _, st := range c.Status() {
				var types []string
				for _, h := range st.History {
					if !h.At.Before(start) {
						types = append(types, loadclient.ShortType(h.Type))
					}
				}
				if strings.Join(types, ",") != "EDS" {
					t.Errorf("%s: new versions %v after an endpoint change, want EDS only", st.ID, types)
				}
			}
			edsBytes := cnt.Bytes

			// A weight change: RDS only.
			start = time.Now()
			measure("route change", benchMesh(services, 3, true, 80))
			for _, st := range c.Status() {
				for _, h := range st.History {
					if !h.At.Before(start) && h.Type != loadclient.TypeRDS {
						t.Errorf("%s: %s after a route change", st.ID, loadclient.ShortType(h.Type))
					}
				}
			}

			// svc-19 goes away: its cluster is removed and, in delta, its EDS
			// name unsubscribed.
			measure("removed service", benchMesh(services-1, 3, true, 80))
			waitFor(t, "the removed service's endpoints are dropped", func() bool {
				for _, st := range c.Status() {
					if len(st.Types[loadclient.TypeEDS].Names) != edsClusters-1 {
						return false
					}
				}
				return true
			})
			if delta && edsBytes > 2000*n {
				t.Errorf("delta endpoint change: %d bytes for %d proxies; one ClusterLoadAssignment each is far less", edsBytes, n)
			}
			if cnt := c.Counters(); cnt.StreamErrors != 0 || cnt.DecodeErrors != 0 || cnt.Acks != cnt.Responses {
				t.Errorf("counters %+v", cnt)
			}
		})
	}
}
