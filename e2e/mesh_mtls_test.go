package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestMeshMTLS: PeerAuthentication and auto mTLS through real sidecars that
// got their certificates over SDS.
//
//	server   198.18.12.1  sidecar, HTTP 8080 (Service web :80), TCP echo 9000 (Service tcp :9000)
//	client   198.18.12.10 sidecar, service account client
//	legacy   198.18.12.20 no sidecar: plaintext only
//
// Auto mTLS: the client's sidecar talks mTLS to the server's (the app sees
// the caller's SPIFFE ID in x-forwarded-client-cert), a plaintext caller
// cannot forge that header; PERMISSIVE takes both (a server-first TCP port
// once protocolDetectionTimeout expires); STRICT refuses legacy on
// both ports but still serves the client; a principal-based ALLOW matches the
// client's certificate; DISABLE on the server makes the client fall back to
// plaintext (no XFCC).
func TestMeshMTLS(t *testing.T) {
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sel := map[string]string{"app": "server"}
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: sel})
	tcp := m.AddService(t, rig.ServiceSpec{Name: "tcp", Ports: []rig.ServicePort{{Name: "tcp-echo", Port: 9000}}, Selector: sel})
	server := m.AddWorkload(t, rig.WorkloadSpec{Name: "server", IP: "198.18.12.1", ServiceAccount: "server", Labels: sel,
		App: rig.AppSpec{Ports: []int{8080}, TCPPorts: []int{9000}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.12.10", ServiceAccount: "client",
		Labels: map[string]string{"app": "client"}, Sidecar: true})
	legacy := m.AddWorkload(t, rig.WorkloadSpec{Name: "legacy", IP: "198.18.12.20", Labels: map[string]string{"app": "legacy"}})
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+web.Hostname, server.IP+":8080", true)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|9000||"+tcp.Hostname, server.IP+":9000", true)
	ns := web.Namespace
	clientID := "spiffe://cluster.local/ns/" + ns + "/sa/client"

	// xfcc calls web from w; ok false means no answer (connection refused or
	// reset). Without a sidecar nothing routes the ClusterIP (the rig has no
	// kube-proxy), so legacy calls the server pod directly.
	url := func(w *rig.Workload, path string) string {
		if w == legacy {
			return "http://" + server.IP + ":8080" + path
		}
		return web.URL(path)
	}
	xfcc := func(w *rig.Workload, headers map[string]string) (status int, xfcc string, ok bool) {
		status, r, err := w.Echo(ctx, "GET", url(w, "/who"), headers)
		if err != nil || r == nil {
			return status, "", false
		}
		return status, r.Header("x-forwarded-client-cert"), true
	}
	tcpOK := func(w *rig.Workload) bool {
		addr := tcp.ClusterIP
		if w == legacy {
			addr = server.IP
		}
		res, err := w.Load(ctx, rig.LoadSpec{URL: "tcp://" + addr + ":9000", N: 1, Timeout: 2 * time.Second})
		return err == nil && len(res.Records) == 1 && res.Records[0].Status != 0
	}
	// eventually retries until check passes: config reaches sidecars asynchronously.
	eventually := func(t *testing.T, what string, check func() error) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := check()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	clientMTLS := func() error {
		status, got, ok := xfcc(client, nil)
		if !ok || status != 200 || !strings.Contains(got, "URI="+clientID) {
			return fmt.Errorf("client → web: %d ok=%v x-forwarded-client-cert %q, want URI=%s", status, ok, got, clientID)
		}
		return nil
	}

	t.Run("PERMISSIVE: auto mTLS between sidecars, plaintext from legacy", func(t *testing.T) {
		eventually(t, "auto mTLS", clientMTLS)
		status, got, ok := xfcc(legacy, map[string]string{"x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/x/sa/forged"})
		if !ok || status != 200 || got != "" {
			t.Errorf("legacy → web: %d ok=%v x-forwarded-client-cert %q, want 200 and none (a plaintext caller cannot claim an identity)", status, ok, got)
		}
		if !tcpOK(client) {
			t.Error("client → tcp over mTLS refused")
		}
		// The TCP echo speaks first: a plaintext caller sends nothing the
		// tls_inspector could read, so it is let through once
		// protocolDetectionTimeout expires (Envoy's 15 s by default).
		m.SetMeshConfig(t, "protocolDetectionTimeout: 0.1s")
		eventually(t, "legacy → tcp after protocolDetectionTimeout", func() error {
			if !tcpOK(legacy) {
				return fmt.Errorf("legacy → tcp (server-first, PERMISSIVE) not served")
			}
			return nil
		})
	})

	t.Run("STRICT: legacy refused on both ports, client still served", func(t *testing.T) {
		m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %s}
spec:
  mtls: {mode: STRICT}
`, ns))
		eventually(t, "legacy refused", func() error {
			if _, _, ok := xfcc(legacy, nil); ok {
				return fmt.Errorf("legacy → web (HTTP) still answered")
			}
			if tcpOK(legacy) {
				return fmt.Errorf("legacy → tcp still answered")
			}
			return nil
		})
		eventually(t, "client served", clientMTLS)
		if !tcpOK(client) {
			t.Error("client → tcp over mTLS refused")
		}
	})

	t.Run("principal-based ALLOW matches the client's certificate", func(t *testing.T) {
		m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: %s}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/%s/sa/client"]}
    to:
    - operation: {paths: ["/who"]}
`, ns, ns))
		eventually(t, "ALLOW by principal", func() error {
			if status, _, _ := xfcc(client, nil); status != 200 {
				return fmt.Errorf("client /who: %d, want 200", status)
			}
			status, _, _, _ := client.HTTP(ctx, "GET", url(client, "/other"), nil)
			if status != 403 {
				return fmt.Errorf("client /other: %d, want 403 (the policy reached the server)", status)
			}
			return nil
		})
		m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: %s}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/%s/sa/someone-else"]}
`, ns, ns))
		eventually(t, "other principal denied", func() error {
			if status, _, _ := xfcc(client, nil); status != 403 {
				return fmt.Errorf("client /who: %d, want 403", status)
			}
			return nil
		})
	})

	t.Run("DISABLE on the server: the client falls back to plaintext", func(t *testing.T) {
		m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: %s}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: server, namespace: %s}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: DISABLE}
`, ns, ns))
		eventually(t, "plaintext", func() error {
			status, got, ok := xfcc(client, nil)
			if !ok || status != 200 || got != "" {
				return fmt.Errorf("client → web: %d ok=%v x-forwarded-client-cert %q, want 200 over plaintext (none)", status, ok, got)
			}
			if _, _, ok := xfcc(legacy, nil); !ok {
				return fmt.Errorf("legacy → web refused under DISABLE")
			}
			if !tcpOK(legacy) {
				return fmt.Errorf("legacy → tcp refused under DISABLE")
			}
			return nil
		})
	})
}
