package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
	"github.com/mizzenmesh/mizzen/pkg/explain"
)

// Issue 15 point 1 through real sidecars: Service ports whose protocol neither
// the name nor appProtocol gives (unnamed; named `web`) are sniffed, as istiod
// does. Every backend is an echo mux (HTTP/1.1, h2c and a TCP echo on one
// port), so the same Service port carries all kinds of clients:
//
//	client  198.18.8.10  no app
//	mux     198.18.8.1   mux 8080                  Services plain (unnamed 80→8080), web (web 80→8080)
//	retry   198.18.8.2   mux 8081-8084, 503 to the first 2 HTTP requests of each port
//	                     Services plain-r1/plain-r2 (unnamed 80→8081/8082), web-r1/web-r2 (web 80→8083/8084)
//
// The mesh config sets protocolDetectionTimeout 200ms, so a client that sends
// nothing first (server-first protocol) is on the TCP branch after 200 ms.
func TestMeshProtocolSniffing(t *testing.T) {
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m.SetMeshConfig(t, "protocolDetectionTimeout: 0.2s\n")

	svc := func(name, port string, target int32, app string) *rig.Service {
		return m.AddService(t, rig.ServiceSpec{Name: name, Ports: []rig.ServicePort{{Name: port, Port: 80, TargetPort: target}}, Selector: map[string]string{"app": app}})
	}
	plain, web := svc("plain", "", 8080, "sniff"), svc("web", "web", 8080, "sniff")
	retrySvcs := []*rig.Service{svc("plain-r1", "", 8081, "retry"), svc("plain-r2", "", 8082, "retry"), svc("web-r1", "web", 8083, "retry"), svc("web-r2", "web", 8084, "retry")}

	sidecar := func(name, ip string, labels map[string]string, app rig.AppSpec) *rig.Workload {
		return m.AddWorkload(t, rig.WorkloadSpec{Name: name, IP: ip, Labels: labels, App: app, Sidecar: true})
	}
	mux := sidecar("mux", "198.18.8.1", map[string]string{"app": "sniff"}, rig.AppSpec{MuxPorts: []int{8080}})
	retry := sidecar("retry", "198.18.8.2", map[string]string{"app": "retry"}, rig.AppSpec{MuxPorts: []int{8081, 8082, 8083, 8084}, FailFirst: 2})
	client := sidecar("client", "198.18.8.10", map[string]string{"app": "client"}, rig.AppSpec{})
	t.Logf("mesh up in %s", time.Since(began).Round(time.Millisecond))

	for _, s := range append([]*rig.Service{plain, web}, retrySvcs...) {
		target := mux
		if strings.Contains(s.Name, "-r") {
			target = retry
		}
		waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+s.Hostname, fmt.Sprintf("%s:%d", target.IP, s.Ports[0].TargetPort), true)
		waitForListener(t, ctx, client.Envoy, s.ClusterIP+"_80", "sniffed-http")
	}
	vs := ""
	for _, s := range []*rig.Service{plain, web} {
		vs += fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s]
  http:
  - name: abort-half-%[1]s
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: %[1]s}}]
---
`, s.Name)
	}
	for _, s := range retrySvcs {
		vs += fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s]
  http:
  - name: retry-%[1]s
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: %[1]s}}]
---
`, s.Name)
	}
	m.API.Apply(t, vs)
	for _, s := range append([]*rig.Service{plain, web}, retrySvcs...) {
		route := "abort-half-" + s.Name
		if strings.Contains(s.Name, "-r") {
			route = "retry-" + s.Name
		}
		waitForRouteNamed(t, ctx, client.Envoy, "80", route, true)
	}
	syncedAll(t, ctx, client)

	protoOf := map[string]string{"http": "HTTP/1.1", "h2c": "HTTP/2.0"}
	t.Run("fault abort 50% for HTTP/1.1 and HTTP/2 callers", func(t *testing.T) {
		for _, s := range []*rig.Service{plain, web} {
			for _, scheme := range []string{"http", "h2c"} {
				stat := "http.outbound_" + s.ClusterIP + "_80.fault.aborts_injected"
				before := envoyStat(t, ctx, client.Envoy, stat)
				const n = 400
				res, err := client.Load(ctx, rig.LoadSpec{URL: fmt.Sprintf("%s://%s:80/", scheme, s.ClusterIP), N: n, Concurrency: 4})
				if err != nil {
					t.Fatal(err)
				}
				st := res.StatusCounts()
				aborts := envoyStat(t, ctx, client.Envoy, stat) - before
				t.Logf("%s (port %q) over %s: %s; %d aborts injected by the client sidecar", s.Name, s.Ports[0].Name, protoOf[scheme], res.Summary(), aborts)
				if len(res.Records) != n || st[200]+st[503] != n {
					t.Fatalf("%d records, status %v (errors %v), want %d answered 200 or 503", len(res.Records), st, res.Errors(3), n)
				}
				// σ = √(0.25/400) = 0.025: 4σ is 0.10.
				if share := float64(st[503]) / n; share < 0.40 || share > 0.60 {
					t.Errorf("503 share %.3f, want 0.50 ± 0.10 (4σ)", share)
				}
				if aborts != int64(st[503]) {
					t.Errorf("the client sidecar injected %d aborts, the client saw %d 503s", aborts, st[503])
				}
				for _, rec := range res.Records {
					if rec.Proto != protoOf[scheme] {
						t.Fatalf("record %+v: the client spoke %s", rec, rec.Proto)
					}
					if rec.Status == 200 && (rec.Pod != "mux" || rec.BackendProto != protoOf[scheme]) {
						t.Fatalf("record %+v: want the mux app, reached in %s", rec, protoOf[scheme])
					}
				}
			}
		}
	})

	t.Run("retries for HTTP/1.1 and HTTP/2 callers", func(t *testing.T) {
		for i, s := range retrySvcs {
			scheme := []string{"http", "h2c"}[i%2]
			res, err := client.Load(ctx, rig.LoadSpec{URL: fmt.Sprintf("%s://%s:80/", scheme, s.ClusterIP), N: 1, IncludeBody: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) != 1 || res.Records[0].Status != 200 {
				t.Fatalf("%s over %s: %s (errors %v), want 200 after two retried 503s", s.Name, protoOf[scheme], res.Summary(), res.Errors(3))
			}
			var body echo.Response
			if err := json.Unmarshal([]byte(res.Records[0].Body), &body); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (port %q) over %s: 200 as the backend's request #%d, reached in %s", s.Name, s.Ports[0].Name, protoOf[scheme], body.Request, res.Records[0].BackendProto)
			if body.Request != 3 || res.Records[0].BackendProto != protoOf[scheme] {
				t.Errorf("%s: backend request #%d in %s, want #3 (2 retries) in %s", s.Name, body.Request, res.Records[0].BackendProto, protoOf[scheme])
			}
		}
	})

	t.Run("raw TCP through the same ports: server-first and client-first", func(t *testing.T) {
		for _, s := range []*rig.Service{plain, web} {
			res, err := client.Load(ctx, rig.LoadSpec{URL: fmt.Sprintf("tcp://%s:80", s.ClusterIP), N: 5, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s server-first: %s, min latency %s (detection timeout 200ms, then the app's own %s wait)", s.Name, res.Summary(), res.Latency(0).Round(time.Millisecond), echo.MuxWait)
			if len(res.Records) != 5 || res.StatusCounts()[200] != 5 {
				dumpStats(t, ctx, client.Envoy, s.ClusterIP, "pre_cx", "outbound|80||"+s.Hostname)
				dumpStats(t, ctx, mux.Envoy, "inbound", "pre_cx", "virtualInbound")
				t.Fatalf("%s server-first: %s (errors %v), want 5 greetings", s.Name, res.Summary(), res.Errors(3))
			}
			for _, rec := range res.Records {
				if rec.Pod != "mux" {
					t.Fatalf("server-first: %+v, want the mux app's greeting", rec)
				}
			}
			// The client sidecar let the silent client through only when the
			// detection timed out: no answer can come sooner.
			if res.Latency(0) < 195*time.Millisecond {
				t.Errorf("server-first: fastest greeting after %s, before the 200ms detection timeout", res.Latency(0))
			}
			for i := range 3 {
				greeting, echoed := clientFirstTCP(t, ctx, client, net.JoinHostPort(s.ClusterIP, "80"), fmt.Sprintf("mizzen binary hello %d\n", i))
				if !strings.Contains(greeting, `"pod":"mux"`) || echoed != fmt.Sprintf("mizzen binary hello %d\n", i) {
					t.Fatalf("%s client-first: greeting %q, echo %q", s.Name, greeting, echoed)
				}
			}
		}
	})

	t.Run("each branch in both sidecars' stats", func(t *testing.T) {
		for _, name := range []string{
			"http.inbound_0.0.0.0_8080.downstream_rq_total", // the server's HTTP branch
			"tcp.inbound|8080||.downstream_cx_total",        // the server's TCP branch
		} {
			if v := envoyStat(t, ctx, mux.Envoy, name); v == 0 {
				t.Errorf("mux sidecar: %s = 0", name)
			}
		}
		for _, s := range []*rig.Service{plain, web} {
			for _, name := range []string{
				"http.outbound_" + s.ClusterIP + "_80.downstream_rq_total",
				"tcp.outbound|80||" + s.Hostname + ".downstream_cx_total",
			} {
				if v := envoyStat(t, ctx, client.Envoy, name); v == 0 {
					t.Errorf("client sidecar: %s = 0", name)
				}
			}
		}
	})

	t.Run("explain and proxy-config show the branch", func(t *testing.T) {
		explainJSON := func(url string) *explain.Trace {
			out, err := mizzenCLI(t, "explain", "--from", "client.default", "--monitoring-addr", m.Mizzen.MonitoringAddr, "-o", "json", url)
			if err != nil {
				t.Fatalf("mizzen explain %s: %v\n%s", url, err, out)
			}
			var tr explain.Trace
			if err := json.Unmarshal([]byte(out), &tr); err != nil {
				t.Fatalf("explain output: %v\n%s", err, out)
			}
			text, _ := mizzenCLI(t, "explain", "--from", "client.default", "--monitoring-addr", m.Mizzen.MonitoringAddr, url)
			t.Logf("mizzen explain %s:\n%s", url, text)
			return &tr
		}
		inboundChain := func(tr *explain.Trace) string {
			for _, st := range tr.Steps {
				if st.Stage == "inbound chain" {
					return st.Result
				}
			}
			return ""
		}
		tr := explainJSON("http://plain/")
		if tr.Branch != "HTTP" || tr.Route != "abort-half-plain" || !strings.HasPrefix(inboundChain(tr), "inbound|8080||-mtls-sniffed-http ") {
			t.Errorf("http://plain/: branch %q, route %q, inbound chain %q; want HTTP, abort-half-plain, inbound|8080||-mtls-sniffed-http", tr.Branch, tr.Route, inboundChain(tr))
		}
		tr = explainJSON("tcp://web:80")
		if tr.Branch != "TCP" || tr.RouteTable != "" || len(tr.Destinations) != 1 || tr.Destinations[0].Cluster != "outbound|80||"+web.Hostname ||
			!strings.HasPrefix(inboundChain(tr), "inbound|8080||-mtls-sniffed-tcp ") {
			t.Errorf("tcp://web:80: branch %q, route table %q, destinations %+v, inbound chain %q; want TCP to outbound|80||%s, inbound|8080||-mtls-sniffed-tcp",
				tr.Branch, tr.RouteTable, tr.Destinations, inboundChain(tr), web.Hostname)
		}
		out, err := mizzenCLI(t, "proxy-config", "listeners", "client.default", "--monitoring-addr", m.Mizzen.MonitoringAddr, "--port", "80")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got := joinRows(tableRows(t, out))
		for _, want := range []string{
			plain.ClusterIP + " | 80 | App: http/1.0,http/1.1,h2c | Route: 80",
			plain.ClusterIP + " | 80 | ALL | Cluster: outbound|80||" + plain.Hostname,
		} {
			if !slices.Contains(got, want) {
				t.Errorf("proxy-config listeners lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("no config was rejected", func(t *testing.T) {
		for _, w := range []*rig.Workload{mux, retry, client} {
			rejects, err := envoyRejects(ctx, w.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			if len(rejects) > 0 {
				t.Errorf("%s: %v", w.Name, rejects)
			}
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := mt.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
		if v := mt.Sum("mizzen_config_errors_total"); v != 0 {
			t.Errorf("mizzen_config_errors_total = %v: some config of this test was refused", v)
		}
	})
}

func envoyStat(t *testing.T, ctx context.Context, e *rig.Envoy, name string) int64 {
	t.Helper()
	s, err := e.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s[name]
}

// clientFirstTCP connects from inside the workload's pod (captured by its
// sidecar), sends line first, then reads the server's greeting and the echo.
func clientFirstTCP(t *testing.T, ctx context.Context, w *rig.Workload, addr, line string) (greeting, echoed string) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := w.Pod.DialInside(dctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if greeting, err = br.ReadString('\n'); err != nil {
		t.Fatalf("client-first to %s: greeting: %v", addr, err)
	}
	if echoed, err = br.ReadString('\n'); err != nil {
		t.Fatalf("client-first to %s: echo: %v", addr, err)
	}
	return greeting, echoed
}

// dumpStats logs the nonzero stats whose names contain any of the parts.
func dumpStats(t *testing.T, ctx context.Context, e *rig.Envoy, parts ...string) {
	t.Helper()
	st, err := e.Stats(ctx)
	if err != nil {
		t.Log(err)
		return
	}
	for k, v := range st {
		for _, p := range parts {
			if v != 0 && strings.Contains(k, p) {
				t.Logf("%s = %d", k, v)
				break
			}
		}
	}
}
