package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// MeshConfig telemetry through real sidecars: with accessLogFile /dev/stdout
// a request leaves Istio's default text line in both sidecars' output (the
// client's outbound, the server's inbound, one x-request-id), then JSON lines
// after accessLogEncoding changes; with tracing to a Zipkin collector (a
// recording HTTP endpoint on the rig network's host address, standing in for
// Zipkin) the app sees B3 headers and the collector gets both sidecars' spans
// of that trace.
func TestMeshAccessLogAndTracing(t *testing.T) {
	began := time.Now()
	// Envoy flushes access log files every 10 s by default; 100 ms here so a
	// line shows up right after its request.
	m := rig.StartMesh(t, rig.MeshOptions{EnvoyExtraArgs: []string{"--file-flush-interval-msec", "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	zipkin := startZipkinRecorder(t)
	mesh := func(encoding string) string {
		return fmt.Sprintf(`accessLogFile: /dev/stdout
accessLogEncoding: %s
defaultConfig:
  tracing:
    sampling: 100
    zipkin: {address: %q}
`, encoding, zipkin.addr)
	}
	m.SetMeshConfig(t, mesh("TEXT"))

	svc := m.AddService(t, rig.ServiceSpec{Name: "logged", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}},
		Selector: map[string]string{"app": "logged"}})
	server := m.AddWorkload(t, rig.WorkloadSpec{Name: "logged-0", IP: "198.18.7.1", ServiceAccount: "logged",
		Labels: map[string]string{"app": "logged"}, App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "logger-0", IP: "198.18.7.2", ServiceAccount: "logger",
		Labels: map[string]string{"app": "logger"}, Sidecar: true})
	outboundCluster := "outbound|80||" + svc.Hostname

	// One request; what the app saw names its request ID and trace.
	status, r, err := client.Echo(ctx, "GET", svc.URL("/logged?q=1"), map[string]string{"user-agent": "mizzen-e2e"})
	if err != nil || status != 200 {
		t.Fatalf("GET %s from the client pod: %d %v", svc.URL("/logged"), status, err)
	}
	reqID, traceID := r.Header("x-request-id"), r.Header("x-b3-traceid")
	if reqID == "" || len(traceID) != 32 || r.Header("x-b3-spanid") == "" || r.Header("x-b3-sampled") != "1" {
		t.Fatalf("app saw x-request-id %q, B3 headers traceid %q spanid %q sampled %q; want a request ID and a sampled 128-bit trace",
			reqID, traceID, r.Header("x-b3-spanid"), r.Header("x-b3-sampled"))
	}

	t.Run("text access log in both sidecars", func(t *testing.T) {
		for _, side := range []struct {
			w       *rig.Workload
			cluster string
		}{{client, outboundCluster}, {server, "inbound|8080||"}} {
			var line string
			err := rig.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
				line = findLine(side.w.Envoy.Log(), reqID)
				if line == "" {
					return fmt.Errorf("no line with x-request-id %s in %s's Envoy output", reqID, side.w.Name)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// Istio's default format: "METHOD PATH PROTOCOL" CODE FLAGS ... "UA" "ID" "AUTHORITY" "UPSTREAM" CLUSTER ...
			for _, want := range []string{`"GET /logged?q=1 HTTP/1.1" 200 - via_upstream`, `"mizzen-e2e"`, `"` + reqID + `"`, " " + side.cluster + " "} {
				if !strings.Contains(line, want) {
					t.Errorf("%s's access log line lacks %q:\n%s", side.w.Name, want, line)
				}
			}
			t.Logf("%s: %s", side.w.Name, line)
		}
	})

	t.Run("spans of the trace reach the collector", func(t *testing.T) {
		var spans []zipkinSpan
		err := rig.Eventually(ctx, 100*time.Millisecond, func(context.Context) error {
			spans = zipkin.trace(traceID)
			kinds := map[string]bool{}
			for _, s := range spans {
				kinds[s.Kind] = true
			}
			// Envoy's Zipkin tracer flushes every 5 s (or 5 spans).
			if !kinds["CLIENT"] || !kinds["SERVER"] {
				return fmt.Errorf("trace %s: spans %+v, want the client sidecar's CLIENT and the server sidecar's SERVER span", traceID, spans)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spans {
			t.Logf("span %s %s %q service %q tags %v", s.ID, s.Kind, s.Name, s.LocalEndpoint.ServiceName, s.Tags)
		}
	})

	t.Run("JSON access log after a mesh config change", func(t *testing.T) {
		ps, err := m.Mizzen.ProxySync(ctx, client.ProxyID)
		if err != nil {
			t.Fatal(err)
		}
		m.SetMeshConfig(t, mesh("JSON"))
		if err := m.WaitSyncedPast(ctx, client.ProxyID, "lds", ps.Types["lds"].Acked); err != nil {
			t.Fatal(err)
		}
		status, r, err := client.Echo(ctx, "GET", svc.URL("/json"), nil)
		if err != nil || status != 200 {
			t.Fatalf("GET /json: %d %v", status, err)
		}
		id := r.Header("x-request-id")
		var entry map[string]any
		err = rig.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			line := findLine(client.Envoy.Log(), id)
			if line == "" {
				return fmt.Errorf("no line with x-request-id %s in the client's Envoy output", id)
			}
			return json.Unmarshal([]byte(line), &entry)
		})
		if err != nil {
			t.Fatal(err)
		}
		if entry["path"] != "/json" || entry["upstream_cluster"] != outboundCluster || entry["response_code"] != float64(200) {
			t.Errorf("JSON access log entry %v", entry)
		}
	})
	t.Logf("test %s", time.Since(began).Round(time.Millisecond))
}

// findLine returns the last line of log containing s.
func findLine(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	Kind          string            `json:"kind"`
	Name          string            `json:"name"`
	Tags          map[string]string `json:"tags"`
	LocalEndpoint struct {
		ServiceName string `json:"serviceName"`
	} `json:"localEndpoint"`
}

// zipkinRecorder accepts Zipkin v2 JSON span batches on POST /api/v2/spans, as
// a collector would, and keeps them for the test to look at.
type zipkinRecorder struct {
	addr string
	mu   sync.Mutex
	got  []zipkinSpan
}

func startZipkinRecorder(t *testing.T) *zipkinRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(rig.NetworkHostIP, "0"))
	if err != nil {
		t.Fatalf("zipkin recorder: %v", err)
	}
	z := &zipkinRecorder{addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/spans" {
			http.NotFound(w, r)
			return
		}
		var spans []zipkinSpan
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(body, &spans)
		}
		if err != nil {
			t.Errorf("zipkin recorder: a span batch that is not Zipkin v2 JSON: %v: %.300s", err, body)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		z.mu.Lock()
		z.got = append(z.got, spans...)
		z.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return z
}

// trace returns the spans recorded so far for traceID.
func (z *zipkinRecorder) trace(traceID string) []zipkinSpan {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []zipkinSpan
	for _, s := range z.got {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}
