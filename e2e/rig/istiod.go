package rig

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Istiod is a running Istio control plane (pilot-discovery, built from the
// istio.io/istio module pinned by e2e/istio: IstioBinary) watching the rig's
// kube-apiserver from outside the cluster, for side-by-side benchmarks
// (DESIGN.md §3 point 4). It serves plaintext xDS on XDSAddr — the port
// istio-agent reaches as 15010 — and nothing secure: no CA, no 15012, no
// webhooks on their own port (they share HTTPAddr), no injection.
type Istiod struct {
	XDSAddr        string // --grpcAddr: plaintext ADS (SotW and delta)
	HTTPAddr       string // --httpAddr: /ready, /debug/...
	MonitoringAddr string // --monitoringAddr: /metrics
	MonitoringURL  string // http://MonitoringAddr
	LogPath        string // its stdout and stderr

	proc   *process
	client *http.Client
}

// IstiodNamespace is where the rig's istiod "runs" (POD_NAMESPACE): its leader
// election leases and, if it writes any, its status live there.
const IstiodNamespace = "istio-system"

// istiodEnv is what pilot-discovery needs to run outside a pod against a
// kubeconfig with plaintext xDS only. Everything else keeps Istio's defaults,
// in particular the push debounce (PILOT_DEBOUNCE_AFTER 100 ms,
// PILOT_DEBOUNCE_MAX 10 s), the push throttle and the rate limit of new xDS
// connections (PILOT_MAX_REQUESTS_PER_SECOND), which the benchmark measures.
var istiodEnv = []string{
	"POD_NAMESPACE=" + IstiodNamespace,
	"POD_NAME=istiod-rig",
	"REVISION=default",
	// No CA (it would create istio-ca-secret and serve CSRs) and no istiod
	// serving certificate: the secure ports are off.
	"ENABLE_CA_SERVER=false",
	"PILOT_CERT_PROVIDER=none",
	// Nothing to patch: no webhook configurations were installed.
	"INJECTION_WEBHOOK_CONFIG_NAME=",
	"VALIDATION_WEBHOOK_CONFIG_NAME=",
	// One replica: it runs the leader-only controllers itself, no Lease.
	"ENABLE_LEADER_ELECTION=false",
	"PILOT_ENABLE_AMBIENT=false",
}

// StartIstiod runs `pilot-discovery discovery` against api (namespace
// istio-system is created if missing) with free loopback ports and waits
// (≤ 60 s) until its /ready answers 200. extraEnv (NAME=value) is added to
// istiodEnv. It gets SIGTERM, then SIGKILL, when the test ends; if the test
// failed its log tail is printed.
func StartIstiod(t testing.TB, api *APIServer, extraEnv ...string) *Istiod {
	t.Helper()
	bin := IstioBinary(t, "pilot-discovery")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := api.Clientset().CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: IstiodNamespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("rig: istiod: namespace %s: %v", IstiodNamespace, err)
	}

	dir := t.TempDir()
	// A mesh config file, so istiod does not wait for the istio ConfigMap; the
	// defaults otherwise (istiod's own, as an empty MeshConfig gives them).
	mesh := filepath.Join(dir, "mesh.yaml")
	networks := filepath.Join(dir, "meshNetworks.yaml")
	if err := os.WriteFile(mesh, []byte("trustDomain: cluster.local\n"), 0o644); err != nil {
		t.Fatalf("rig: istiod: %v", err)
	}
	if err := os.WriteFile(networks, []byte("networks: {}\n"), 0o644); err != nil {
		t.Fatalf("rig: istiod: %v", err)
	}
	d := &Istiod{
		XDSAddr:        FreeAddr(t, "127.0.0.1"),
		HTTPAddr:       FreeAddr(t, "127.0.0.1"),
		MonitoringAddr: FreeAddr(t, "127.0.0.1"),
		LogPath:        filepath.Join(dir, "istiod.log"),
		client:         &http.Client{Timeout: 10 * time.Second},
	}
	d.MonitoringURL = "http://" + d.MonitoringAddr
	args := []string{"discovery",
		"--kubeconfig", api.Kubeconfig,
		"--grpcAddr", d.XDSAddr,
		"--httpAddr", d.HTTPAddr,
		"--monitoringAddr", d.MonitoringAddr,
		"--secureGRPCAddr", "",
		"--httpsAddr", "",
		"--ctrlz_address", "127.0.0.1",
		"--ctrlz_port", strconv.Itoa(FreePort(t, "127.0.0.1")),
		"--meshConfig", mesh,
		"--networksConfig", networks,
		"--namespace", IstiodNamespace,
		"--domain", "cluster.local",
		// The load client sends CLUSTER_ID Kubernetes, as istio-agent does by default.
		"--clusterID", "Kubernetes",
		// As fast as the apiserver allows (the rig's admin config has QPS 500).
		"--kubernetesApiQPS", "500",
		"--kubernetesApiBurst", "1000",
		"--log_output_level", "default:warn",
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), istiodEnv...), extraEnv...)
	t.Logf("rig: starting %s %s (log %s)", bin, strings.Join(args, " "), d.LogPath)
	d.proc = startProcess(t, "istiod", cmd, d.LogPath, 10*time.Second)

	err = Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		if d.proc.Exited() {
			return fmt.Errorf("istiod exited: %v", d.proc.waitErr)
		}
		_, err := getOK(ctx, d.client, "http://"+d.HTTPAddr+"/ready", "GET /ready")
		return err
	})
	if err != nil {
		t.Fatalf("rig: istiod not ready: %v; log:\n%s", err, TailFile(d.LogPath, 60))
	}
	return d
}

// Pid is the process ID of pilot-discovery.
func (d *Istiod) Pid() int { return d.proc.cmd.Process.Pid }

// Exited reports whether istiod has ended.
func (d *Istiod) Exited() bool { return d.proc.Exited() }

// Stop ends istiod (SIGTERM, then SIGKILL) and waits until it is gone.
func (d *Istiod) Stop() { d.proc.stop(10 * time.Second) }

// Get GETs a path of the HTTP (debug) port and returns the body.
func (d *Istiod) Get(ctx context.Context, path string) ([]byte, error) {
	return getOK(ctx, d.client, "http://"+d.HTTPAddr+path, "GET "+path)
}

// Metrics scrapes /metrics on the monitoring port.
func (d *Istiod) Metrics(ctx context.Context) (Metrics, error) {
	b, err := getOK(ctx, d.client, d.MonitoringURL+"/metrics", "GET /metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(strings.NewReader(string(b)))
}
