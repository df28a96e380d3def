package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

// BookinfoApp is one echo app standing in for a bookinfo workload. The addresses are
// fixed by the EndpointSlices in examples/bookinfo.
type BookinfoApp struct {
	Name    string // "reviews-v2"
	Service string // "reviews"
	Version string // "v2"
	Addr    string // "127.0.1.5:9080"
}

// BookinfoApps are the workloads of examples/bookinfo.
var BookinfoApps = []BookinfoApp{
	{"productpage-v1", "productpage", "v1", "127.0.1.1:9080"},
	{"details-v1", "details", "v1", "127.0.1.2:9080"},
	{"ratings-v1", "ratings", "v1", "127.0.1.3:9080"},
	{"reviews-v1", "reviews", "v1", "127.0.1.4:9080"},
	{"reviews-v2", "reviews", "v2", "127.0.1.5:9080"},
	{"reviews-v3", "reviews", "v3", "127.0.1.6:9080"},
}

// The bookinfo ingress gateway's identity, as an Istio ingress gateway pod would present it.
const (
	DefaultGatewayIP = "127.0.0.20"
	// GatewayBindIPKey is the node metadata key (a mizzen extension) that makes mizzen bind
	// gateway listeners to that IP instead of 0.0.0.0, so several test gateways share loopback.
	GatewayBindIPKey = "MIZZEN_GATEWAY_BIND_IP"
)

// GatewayNodeID is the node ID of an istio-ingressgateway pod with the given IP.
// KubePodIP maps a bookinfo app's loopback address (127.0.1.N) to its pod
// address on the rig's network in Kubernetes mode (198.18.1.N).
func KubePodIP(loopback string) string { return strings.Replace(loopback, "127.0.1.", "198.18.1.", 1) }

func GatewayNodeID(ip string) string {
	return "router~" + ip + "~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local"
}

// GatewayMetadata is the node metadata of that pod, plus the bind-IP extension.
func GatewayMetadata(ip string) map[string]any {
	return map[string]any{
		"NAMESPACE":      "istio-system",
		"LABELS":         map[string]any{"istio": "ingressgateway"},
		"INSTANCE_IPS":   ip,
		"CLUSTER_ID":     "Kubernetes",
		GatewayBindIPKey: ip,
	}
}

// BookinfoOptions tunes Bookinfo; the zero value is the standard setup.
type BookinfoOptions struct {
	GatewayIP     string   // default 127.0.0.20
	MizzenArgs    []string // extra `mizzen serve` flags
	EnvoyLogLevel string   // default info
	ReadyTimeout  time.Duration
	// Kube, when set, runs mizzen in Kubernetes mode: the example is applied
	// through this apiserver and mizzen watches it with --kubeconfig; Dir stays
	// empty and WriteConfig does not apply.
	Kube *APIServer
}

// BookinfoEnv is a running bookinfo: echo apps, mizzen watching a config dir seeded
// with examples/bookinfo, and an ingress gateway Envoy serving on GatewayIP:80.
type BookinfoEnv struct {
	Dir        string // mizzen's --config-dir
	Mizzen     *Mizzen
	Gateway    *Envoy
	GatewayIP  string
	GatewayURL string // http://GatewayIP:80
	Apps       map[string]*echo.Server
	Client     *http.Client // keep-alive client for gateway traffic
	Kube       *APIServer   // set in Kubernetes mode

	staging string // same filesystem as Dir, for atomic writes
}

// Bookinfo sets up bookinfo with the default options.
func Bookinfo(t testing.TB) *BookinfoEnv {
	t.Helper()
	return BookinfoWith(t, BookinfoOptions{})
}

// BookinfoWith sets up bookinfo and waits (≤ ReadyTimeout, default 15 s) until
// GET /productpage through the gateway is answered by productpage. Everything is
// torn down when the test ends. Tests using it must not run in parallel with each
// other: the app addresses are fixed.
func BookinfoWith(t testing.TB, opts BookinfoOptions) *BookinfoEnv {
	t.Helper()
	if opts.GatewayIP == "" {
		opts.GatewayIP = DefaultGatewayIP
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 15 * time.Second
	}
	CheckLoopback(t, opts.GatewayIP)
	// Fail before starting anything if Envoy is missing.
	if _, err := EnvoyPath(); err != nil {
		t.Fatalf("rig: %v", err)
	}
	// The apps' addresses and the gateway's port 80 are fixed, so one bookinfo
	// world per machine at a time: a test binary of another checkout waits.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "mizzen-e2e-bookinfo.lock"), 15*time.Minute,
		func() { t.Logf("rig: waiting for another test binary's bookinfo to be torn down") })
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	t.Cleanup(unlock) // registered first, so it runs after everything else is down
	b := &BookinfoEnv{
		Dir:        t.TempDir(),
		staging:    t.TempDir(),
		GatewayIP:  opts.GatewayIP,
		GatewayURL: "http://" + net.JoinHostPort(opts.GatewayIP, "80"),
		Apps:       map[string]*echo.Server{},
	}

	// Seed the config dir with the example.
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	exampleDir := filepath.Join(root, "examples", "bookinfo")
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(exampleDir, pat))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("rig: no YAML files in %s: the bookinfo example is missing", exampleDir)
	}
	var all strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("rig: %v", err)
		}
		all.Write(data)
		all.WriteString("\n---\n") // files are separate YAML streams
		if err := os.WriteFile(filepath.Join(b.Dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatalf("rig: %v", err)
		}
	}
	for _, app := range BookinfoApps {
		ip, _, _ := net.SplitHostPort(app.Addr)
		if !strings.Contains(all.String(), ip) {
			t.Fatalf("rig: examples/bookinfo does not mention %s (%s); rig.BookinfoApps and the example disagree", ip, app.Name)
		}
	}

	if opts.Kube != nil {
		// A real apiserver refuses loopback endpoints: in Kubernetes mode the apps
		// run in pods of the rig's network, at 198.18.1.N instead of 127.0.1.N.
		network := StartNetwork(t)
		for _, app := range BookinfoApps {
			ip, port, _ := net.SplitHostPort(app.Addr)
			podIP := KubePodIP(ip)
			pod := network.AddPod(t, app.Name, podIP)
			p, _ := strconv.Atoi(port)
			pod.StartEcho(t, p, app.Service, app.Version)
		}
		opts.Kube.Apply(t, strings.ReplaceAll(all.String(), "127.0.1.", "198.18.1."))
		b.Kube = opts.Kube
		b.Mizzen = StartMizzen(t, append([]string{"--kubeconfig", opts.Kube.Kubeconfig}, opts.MizzenArgs...)...)
	}
	for _, app := range BookinfoApps {
		if opts.Kube != nil {
			break
		}
		s, err := echo.Start(app.Addr, echo.Options{Service: app.Service, Version: app.Version, Pod: app.Name + "-0"})
		if err != nil {
			t.Fatalf("rig: starting echo app %s on %s: %v (is a previous test's app still running?)", app.Name, app.Addr, err)
		}
		t.Cleanup(func() { s.Close() })
		b.Apps[app.Name] = s
	}

	if opts.Kube == nil {
		b.Mizzen = StartMizzen(t, append([]string{"--config-dir", b.Dir}, opts.MizzenArgs...)...)
	}
	b.Gateway = StartEnvoy(t, EnvoyOptions{
		NodeID:   GatewayNodeID(opts.GatewayIP),
		Cluster:  "istio-ingressgateway.istio-system",
		Metadata: GatewayMetadata(opts.GatewayIP),
		XDSAddr:  b.Mizzen.XDSAddr,
		LogLevel: opts.EnvoyLogLevel,
	})

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	b.Client = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	ctx, cancel := context.WithTimeout(context.Background(), opts.ReadyTimeout)
	defer cancel()
	err = Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		if b.Gateway.Exited() {
			return errors.New("gateway envoy exited")
		}
		r, err := b.Get(ctx, "", "/productpage", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Body.Service != "productpage" {
			return fmt.Errorf("GET /productpage: %d from %q", r.Status, r.Body.Service)
		}
		return nil
	})
	if err != nil {
		names, _ := b.Gateway.ListenerNames(context.Background())
		t.Fatalf("rig: bookinfo gateway not serving /productpage on %s after %s: %v (gateway listeners: %v)",
			b.GatewayURL, opts.ReadyTimeout, err, names)
	}
	return b
}

// GatewayResult is one answer through the gateway.
type GatewayResult struct {
	Status  int
	Version string // the x-echo-version response header
	Body    echo.Response
	Raw     []byte
}

// Get sends GET path through the gateway with Host host (default: the gateway IP)
// and extra headers. A non-echo body (e.g. Envoy's own 404) leaves Body empty.
func (b *BookinfoEnv) Get(ctx context.Context, host, path string, headers map[string]string) (*GatewayResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.GatewayURL+path, nil)
	if err != nil {
		return nil, err
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &GatewayResult{Status: resp.StatusCode, Version: resp.Header.Get(echo.HeaderVersion), Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &r.Body)
	}
	return r, nil
}

// WriteConfig atomically (write to a staging file on the same filesystem, then
// rename) puts a file named name with content into the config dir, and returns the
// time of the rename.
func (b *BookinfoEnv) WriteConfig(t testing.TB, name, content string) time.Time {
	t.Helper()
	return WriteFileAtomic(t, b.staging, filepath.Join(b.Dir, name), content)
}

// RemoveConfig deletes a file from the config dir.
func (b *BookinfoEnv) RemoveConfig(t testing.TB, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(b.Dir, name)); err != nil {
		t.Fatalf("rig: %v", err)
	}
}

// WriteFileAtomic writes content to a temp file in stagingDir and renames it to
// path, so a watcher of path's directory never sees a partial file. stagingDir
// should be on path's filesystem; if it is not, a hidden temp file next to path
// is used. It returns the time of the rename.
func WriteFileAtomic(t testing.TB, stagingDir, path, content string) time.Time {
	t.Helper()
	write := func(dir, pattern string) time.Time {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			t.Fatalf("rig: %v", err)
		}
		if _, err := f.WriteString(content); err != nil {
			f.Close()
			t.Fatalf("rig: %v", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			t.Fatalf("rig: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("rig: %v", err)
		}
		if err := os.Chmod(f.Name(), 0o644); err != nil {
			t.Fatalf("rig: %v", err)
		}
		now := time.Now()
		if err := os.Rename(f.Name(), path); err != nil {
			os.Remove(f.Name())
			if errors.Is(err, syscall.EXDEV) {
				return time.Time{}
			}
			t.Fatalf("rig: %v", err)
		}
		return now
	}
	if stagingDir != "" {
		if at := write(stagingDir, "stage-*"); !at.IsZero() {
			return at
		}
	}
	return write(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
}

// Versions counts results by x-echo-version, for logging.
func Versions(rs []*GatewayResult) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		out[r.Version]++
	}
	return out
}

// FormatCounts renders a count map stably.
func FormatCounts(m map[string]int) string {
	keys := sortedKeys(m)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
