package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestAgentGateway: Istio's ingress gateway as Istio installs it —
// `pilot-agent proxy router` in pods labelled istio: ingressgateway in
// istio-system — serving bookinfo (examples/bookinfo applied to the
// apiserver, the apps in pods at 198.18.1.N) and an HTTPS server whose
// certificate comes from a Secret by credentialName, which mizzen serves over
// SDS on the agent's xDS stream (the agent proxies it, proving the gateway's
// identity with its token).
//
// The main install is Istio's `gateway` Helm chart released as
// istio-ingressgateway: Service istio-ingressgateway 80→80, 443→443, and the
// pod sysctl net.ipv4.ip_unprivileged_port_start=0 so the gateway (uid 1337)
// binds them; two pods, one in delta mode (the default), one in SotW mode.
// The last subtest adds a gateway as Istio's older istio-ingress chart (what
// `istioctl install` deploys) runs it: Service 80→8080, 443→8443, no sysctl,
// ISTIO_META_UNPRIVILEGED_POD=true — istiod binds the Service's targetPorts
// there (model.resolvePorts), so must mizzen.
func TestAgentGateway(t *testing.T) {
	const (
		host       = "secure.example.com"
		secretName = "agent-gateway-credential"
		gwNS       = "istio-system"
		gwSA       = "istio-ingressgateway-service-account"
	)
	// Istio's build first (cached; cold it takes long), so the test's own
	// deadlines measure the test.
	rig.IstioBinary(t, "pilot-agent")
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// bookinfo, as in Kubernetes mode: the example's objects with the apps'
	// addresses on the rig network, each app in a pod of its own.
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "bookinfo", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("examples/bookinfo has no YAML")
	}
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		all.WriteString("\n---\n")
	}
	for _, app := range rig.BookinfoApps {
		ip, port, _ := net.SplitHostPort(app.Addr)
		p, _ := strconv.Atoi(port)
		m.Net.AddPod(t, app.Name, rig.KubePodIP(ip)).StartEcho(t, p, app.Service, app.Version)
	}
	m.API.Apply(t, strings.ReplaceAll(all.String(), "127.0.1.", "198.18.1."))

	// The gateway Service of a default install, and the credential.
	gwLabels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
	m.AddService(t, rig.ServiceSpec{Name: "istio-ingressgateway", Namespace: gwNS, Selector: gwLabels,
		Ports: []rig.ServicePort{{Name: "status-port", Port: 15021}, {Name: "http2", Port: 80}, {Name: "https", Port: 443}}})
	certPEM, keyPEM := selfSignedCert(t, host)
	if _, err := m.API.Clientset().CoreV1().Secrets(gwNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: gwNS}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.API.Apply(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure, namespace: %[1]s}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [%[2]s]
    tls: {mode: SIMPLE, credentialName: %[3]s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: %[1]s}
spec:
  hosts: [%[2]s]
  gateways: [secure]
  http:
  - route:
    - destination: {host: productpage.default.svc.cluster.local, port: {number: 9080}}
`, gwNS, host, secretName))

	gw := func(name, ip string, sotw bool) *rig.Agent {
		return m.AddAgent(t, rig.AgentSpec{Name: name, Namespace: gwNS, IP: ip, ServiceAccount: gwSA, Router: true, SotW: sotw,
			Labels: gwLabels, WorkloadName: "istio-ingressgateway", Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}})
	}
	gateways := []*rig.Agent{gw("istio-ingressgateway-delta", "198.18.30.1", false), gw("istio-ingressgateway-sotw", "198.18.30.2", true)}
	t.Logf("mesh, bookinfo and %d gateway pods up in %s", len(gateways), time.Since(began).Round(time.Millisecond))

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	wantCert, _ := pem.Decode(certPEM)
	// productpage: GET /productpage on the gateway's HTTP port until
	// productpage answers, then /static (200) and an unrouted path (404).
	productpage := func(t *testing.T, g *rig.Agent, port int) {
		t.Helper()
		httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		get := func(ctx context.Context, url string) (int, echo.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := httpClient.Do(req)
			if err != nil {
				return 0, echo.Response{}, err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var r echo.Response
			_ = json.Unmarshal(raw, &r)
			return resp.StatusCode, r, nil
		}
		start := time.Now()
		base := "http://" + net.JoinHostPort(g.IP, strconv.Itoa(port))
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			status, r, err := get(ctx, base+"/productpage")
			if err != nil || status != 200 || r.Service != "productpage" {
				return fmt.Errorf("GET /productpage: %d from %q (%v)", status, r.Service, err)
			}
			return nil
		}); err != nil {
			names, _ := g.Envoy.ListenerNames(ctx)
			t.Fatalf("%s (%s): %s: %v (listeners %v)", g.Name, agentMode(g), base, err, names)
		}
		t.Logf("%s (%s): %s/productpage 200 from productpage %s after ready", g.Name, agentMode(g), base, time.Since(start).Round(time.Millisecond))
		for path, want := range map[string]int{"/static/x": 200, "/nothing-here": 404} {
			if status, _, err := get(ctx, base+path); err != nil || status != want {
				t.Errorf("%s: GET %s: %d %v, want %d", g.Name, path, status, err, want)
			}
		}
	}
	// secure: HTTPS with SNI host on the gateway's HTTPS port until it
	// shows the Secret's certificate and productpage answers; the
	// credential comes over ADS (mizzen, through the agent).
	secure := func(t *testing.T, g *rig.Agent, port int) {
		t.Helper()
		addr := net.JoinHostPort(g.IP, strconv.Itoa(port))
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: pool},
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
			},
		}}
		start := time.Now()
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/productpage", nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var r echo.Response
			_ = json.Unmarshal(raw, &r)
			if resp.StatusCode != 200 || r.Service != "productpage" {
				return fmt.Errorf("%d from %q", resp.StatusCode, r.Service)
			}
			if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, wantCert.Bytes) {
				return fmt.Errorf("served another certificate (CN %s)", resp.TLS.PeerCertificates[0].Subject.CommonName)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s (%s): https://%s via %s: %v", g.Name, agentMode(g), host, addr, err)
		}
		t.Logf("%s (%s): https://%s/productpage via %s 200 with the Secret's certificate after %s", g.Name, agentMode(g), host, addr, time.Since(start).Round(time.Millisecond))
		srcs, err := sdsSources(ctx, g.Envoy)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(srcs["kubernetes://"+secretName], ","); got != "ads" {
			t.Errorf("%s: credential %s fetched from %q, want ads (mizzen, through the agent)", g.Name, secretName, got)
		}
	}
	// clean: SYNCED everywhere (SDS too: the credential), the agent's
	// bootstrap untouched, nothing rejected by Envoy or counted by mizzen.
	clean := func(t *testing.T, gws ...*rig.Agent) {
		t.Helper()
		var names []string
		for _, g := range gws {
			names = append(names, agentPodName(g.Workload))
		}
		checks := map[string]func(map[string]string) error{}
		for _, g := range gws {
			// SDS SYNCED: the credential, from mizzen through the agent.
			checks[agentPodName(g.Workload)] = agentRowCheck(g, "SYNCED")
		}
		table, err := waitProxyStatusSynced(ctx, t, m.Mizzen, names, func(name string, row map[string]string) error {
			return checks[name](row)
		})
		t.Logf("mizzen proxy-status:\n%s", table)
		if err != nil {
			t.Errorf("not all SYNCED: %v", err)
		}
		for _, g := range gws {
			bad, err := bootstrapCollisions(ctx, g.Envoy, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bad {
				t.Errorf("%s: %s", g.Name, b)
			}
			rej, err := envoyRejects(ctx, g.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range rej {
				t.Errorf("%s: %s = %d", g.Name, k, v)
			}
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := mt.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
		checkAgentStreams(ctx, t, m.Mizzen, gws...)
	}

	t.Run("bookinfo /productpage through the gateway", func(t *testing.T) {
		for _, g := range gateways {
			productpage(t, g, 80)
		}
	})
	t.Run("credentialName HTTPS server", func(t *testing.T) {
		for _, g := range gateways {
			secure(t, g, 443)
		}
	})
	t.Run("gateways SYNCED; nothing collides with the agent bootstrap; nothing rejected", func(t *testing.T) {
		clean(t, gateways...)
	})

	t.Run("istio-ingress chart: listeners bind the Service's targetPorts 8080 and 8443", func(t *testing.T) {
		labels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway-classic"}
		m.AddService(t, rig.ServiceSpec{Name: "istio-ingressgateway-classic", Namespace: gwNS, Selector: labels,
			Ports: []rig.ServicePort{{Name: "status-port", Port: 15021}, {Name: "http2", Port: 80, TargetPort: 8080}, {Name: "https", Port: 443, TargetPort: 8443}}})
		g := m.AddAgent(t, rig.AgentSpec{Name: "istio-ingressgateway-classic", Namespace: gwNS, IP: "198.18.30.3", ServiceAccount: gwSA, Router: true,
			Labels: labels, WorkloadName: "istio-ingressgateway-classic", Env: map[string]string{"ISTIO_META_UNPRIVILEGED_POD": "true"},
			ReadyTimeout: 20 * time.Second})
		productpage(t, g, 8080)
		secure(t, g, 8443)
		clean(t, append([]*rig.Agent{g}, gateways...)...)
	})
	t.Logf("TestAgentGateway took %s", time.Since(began).Round(time.Millisecond))
}
