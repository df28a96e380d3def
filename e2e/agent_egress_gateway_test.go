package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestAgentEgressGateway: Istio's egress-gateway flow (the book's §7.10)
// through deploy/'s egress gateway (deploy/gateways/egress) run by the real
// pilot-agent in router mode. A sidecar calls http://external.example.com (a
// MESH_EXTERNAL ServiceEntry for a host in a rig namespace of its own, no
// sidecar); the mesh VirtualService sends it to the egress gateway's subset,
// which the sidecar reaches with ISTIO_MUTUAL (DestinationRule, SNI
// external.example.com); the gateway's HTTPS ISTIO_MUTUAL server terminates
// that mTLS with its workload certificate and routes to the external host.
// The external host sees the gateway as its client; a connection to the
// gateway without a mesh client certificate is refused.
func TestAgentEgressGateway(t *testing.T) {
	const (
		extHost = "external.example.com"
		vip     = "240.240.0.50"
	)
	rig.IstioBinary(t, "pilot-agent")
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	ext := m.AddWorkload(t, rig.WorkloadSpec{Name: "ext-0", Namespace: "external", IP: "198.18.33.1",
		Labels: map[string]string{"app": "ext"}, App: rig.AppSpec{Ports: []int{80}}})
	dg := readDeployedGateway(t, "egress")
	m.AddService(t, dg.service)
	gw := m.AddAgent(t, rig.AgentSpec{Name: dg.name + "-0", Namespace: "istio-system", IP: "198.18.33.10", ServiceAccount: dg.sa, Router: true,
		Labels: dg.labels, Annotations: dg.annotations, WorkloadName: dg.name, Env: map[string]string{"ISTIO_META_UNPRIVILEGED_POD": "true"},
		SecretMounts: dg.secretMounts})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "sleep-0", IP: "198.18.33.20", Labels: map[string]string{"app": "sleep"}, Sidecar: true})

	m.API.Apply(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [%[1]s]
  addresses: [%[2]s]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  endpoints:
  - address: %[3]s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: https, protocol: HTTPS}
    hosts: [%[1]s]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
    trafficPolicy:
      portLevelSettings:
      - port: {number: 80}
        tls: {mode: ISTIO_MUTUAL, sni: %[1]s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external-through-egress-gateway, namespace: default}
spec:
  hosts: [%[1]s]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 80}}
  - match: [{gateways: [istio-egressgateway], port: 80}]
    route:
    - destination: {host: %[1]s, port: {number: 80}}
`, extHost, vip, ext.IP))
	t.Logf("mesh, external host, egress gateway and client up in %s", time.Since(began).Round(time.Millisecond))

	t.Run("sidecar → egress gateway (ISTIO_MUTUAL) → external host", func(t *testing.T) {
		start := time.Now()
		var lastErr error
		err := rig.Eventually(ctx, 250*time.Millisecond, func(ctx context.Context) error {
			status, r, err := client.Echo(ctx, "GET", "http://"+vip+"/egress", map[string]string{"Host": extHost})
			if err != nil {
				lastErr = err
				return err
			}
			if status != 200 || r.Pod != "ext-0" || r.Path != "/egress" {
				return fmt.Errorf("%d from pod %q path %q", status, r.Pod, r.Path)
			}
			// The external host's client is the gateway, not the sidecar.
			if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != gw.IP {
				return fmt.Errorf("the external host saw client %s, want the egress gateway %s", r.RemoteAddr, gw.IP)
			}
			return nil
		})
		if err != nil {
			names, _ := gw.Envoy.ListenerNames(ctx)
			t.Fatalf("http://%s/egress from %s: %v (last %v; gateway listeners %v)", extHost, client.Name, err, lastErr, names)
		}
		t.Logf("http://%s/egress from the sidecar: 200 from ext-0 via the egress gateway after %s", extHost, time.Since(start).Round(time.Millisecond))
		// The gateway's only listener requires a mesh client certificate
		// (next subtest), so the sidecar's hop was Istio mTLS.
		names, err := gw.Envoy.ListenerNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var dynamic []string
		for _, n := range names {
			if strings.HasPrefix(n, "0.0.0.0_") {
				dynamic = append(dynamic, n)
			}
		}
		if len(dynamic) != 1 || dynamic[0] != "0.0.0.0_8080" {
			t.Errorf("gateway listeners %v: want the one HTTPS server's 0.0.0.0_8080 (Service 80→8080)", names)
		}
	})

	t.Run("the gateway refuses a client without a mesh certificate", func(t *testing.T) {
		addr := net.JoinHostPort(gw.IP, "8080")
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: &tls.Config{ServerName: extHost, InsecureSkipVerify: true}} //nolint:gosec // only the refusal matters
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		conn, err := d.DialContext(cctx, "tcp", addr)
		if err == nil {
			// TLS 1.3: the server's refusal of a missing certificate
			// arrives with the first read.
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: " + extHost + "\r\n\r\n"))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatalf("tls://%s without a client certificate: answered, want refused", addr)
		}
		// Refused by TLS (an alert), not unreachable.
		if !strings.Contains(err.Error(), "tls:") {
			t.Fatalf("tls://%s without a client certificate: %v, want a TLS alert (certificate required)", addr, err)
		}
		t.Logf("tls://%s without a client certificate: %v", addr, err)
	})

	t.Run("SYNCED; nothing rejected", func(t *testing.T) {
		rej, err := envoyRejects(ctx, gw.Envoy)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range rej {
			t.Errorf("gateway: %s = %d", k, v)
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := mt.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
	})
	t.Logf("TestAgentEgressGateway took %s", time.Since(began).Round(time.Millisecond))
}
