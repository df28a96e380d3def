package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestModeSelection(t *testing.T) {
	kubeconfig := writeKubeconfig(t, "https://127.0.0.1:1")
	tests := []struct {
		name      string
		o         serveOptions
		inCluster bool
		wantKube  bool
		wantErr   string
	}{
		{name: "file mode", o: serveOptions{configDir: "x"}},
		{name: "file mode wins in a pod", o: serveOptions{configDir: "x"}, inCluster: true},
		{name: "kubeconfig", o: serveOptions{kubeconfig: kubeconfig}, wantKube: true},
		{name: "both", o: serveOptions{kubeconfig: kubeconfig, configDir: "x"}, wantErr: "exclude each other"},
		{name: "missing kubeconfig", o: serveOptions{kubeconfig: filepath.Join(t.TempDir(), "nope")}, wantErr: "--kubeconfig"},
		// In a pod without the service-account files in-cluster config fails,
		// which shows it was chosen.
		{name: "in cluster", inCluster: true, wantErr: "in-cluster config"},
		{name: "neither", o: serveOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inCluster {
				t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
				t.Setenv("KUBERNETES_SERVICE_PORT", "443")
			} else {
				t.Setenv("KUBERNETES_SERVICE_HOST", "")
			}
			cfg, err := kubeConfig(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg != nil) != tc.wantKube {
				t.Fatalf("Kubernetes mode = %v, want %v", cfg != nil, tc.wantKube)
			}
		})
	}
}

func TestServeNeedsASource(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	err := serve(context.Background(), serveOptions{logLevel: "info"})
	if err == nil || !strings.Contains(err.Error(), "--config-dir is required") {
		t.Fatalf("err = %v", err)
	}
	err = serve(context.Background(), serveOptions{logLevel: "info", configDir: t.TempDir(), discoverySelectors: []string{"a=b"}})
	if err == nil || !strings.Contains(err.Error(), "Kubernetes mode") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseSelectors(t *testing.T) {
	got, err := parseSelectors([]string{"istio-discovery=enabled", "env in (prod,staging),!legacy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d selectors, want 2", len(got))
	}
	for _, tc := range []struct {
		sel    int
		labels labels.Set
		want   bool
	}{
		{0, labels.Set{"istio-discovery": "enabled"}, true},
		{0, labels.Set{"istio-discovery": "disabled"}, false},
		{1, labels.Set{"env": "prod"}, true},
		{1, labels.Set{"env": "prod", "legacy": "yes"}, false},
		{1, labels.Set{"env": "dev"}, false},
	} {
		sel, err := metav1.LabelSelectorAsSelector(&got[tc.sel])
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(tc.labels) != tc.want {
			t.Errorf("selector %d (%s) on %v: got %v", tc.sel, sel, tc.labels, !tc.want)
		}
	}
	if _, err := parseSelectors([]string{"a=b=c"}); err == nil {
		t.Error("no error for a malformed selector")
	}
}

// Until the cluster's caches have synced nothing is served: /ready says 503.
func TestKubeModeNotReadyUntilSynced(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	// A cluster that never answers.
	dead := freeAddr(t)
	mon := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, serveOptions{
			kubeconfig: writeKubeconfig(t, "https://"+dead), logLevel: "error",
			xdsAddr: freeAddr(t), monitoringAddr: mon,
		})
	}()
	deadline := time.Now().Add(5 * time.Second)
	var code int
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + mon + "/ready")
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("/ready = %d, want 503", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "` + server + `", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestTrustDomainMismatchIsReported(t *testing.T) {
	if errs := trustDomainMismatch("", "cluster.local"); len(errs) != 0 {
		t.Errorf("unset mesh trust domain reported: %v", errs)
	}
	if errs := trustDomainMismatch("cluster.local", "cluster.local"); len(errs) != 0 {
		t.Errorf("equal trust domains reported: %v", errs)
	}
	if errs := trustDomainMismatch("cluster.local", "corp.example"); len(errs) != 0 {
		t.Errorf("the model's default (mesh config silent) reported: %v", errs)
	}
	errs := trustDomainMismatch("example.org", "cluster.local")
	if len(errs) != 1 || errs[0].Field != "trustDomain" || !strings.Contains(errs[0].Message, "--trust-domain example.org") {
		t.Errorf("mismatch: %v", errs)
	}
}
