package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// applyBookinfo applies examples/bookinfo to the mesh's apiserver with each
// app in a pod of its own at 198.18.1.N (the example's 127.0.1.N).
func applyBookinfo(t *testing.T, m *rig.Mesh) {
	t.Helper()
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
}

// deployedGateway is a gateway of deploy/gateways/<which> as the rig runs it:
// the Service, and the pod template's labels, annotations, service account and
// Secret mounts (Secret name → mountPath).
type deployedGateway struct {
	name         string
	service      rig.ServiceSpec
	labels       map[string]string
	annotations  map[string]string
	sa           string
	secretMounts map[string]string
}

func readDeployedGateway(t *testing.T, which string) deployedGateway {
	t.Helper()
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "deploy", "gateways", which)
	var d appsv1.Deployment
	var svc corev1.Service
	for file, into := range map[string]any{"deployment.yaml": &d, "service.yaml": &svc} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s/%s: %v", dir, file, err)
		}
	}
	g := deployedGateway{name: d.Name, labels: d.Spec.Template.Labels, annotations: d.Spec.Template.Annotations,
		sa: d.Spec.Template.Spec.ServiceAccountName, secretMounts: map[string]string{}}
	g.service = rig.ServiceSpec{Name: svc.Name, Namespace: svc.Namespace, Selector: svc.Spec.Selector}
	for _, p := range svc.Spec.Ports {
		g.service.Ports = append(g.service.Ports, rig.ServicePort{Name: p.Name, Port: p.Port, TargetPort: p.TargetPort.IntVal})
	}
	secrets := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, vm := range c.VolumeMounts {
			if name, ok := secrets[vm.Name]; ok {
				g.secretMounts[name] = vm.MountPath
			}
		}
	}
	return g
}

// TestAgentGatewayServerKinds: deploy/'s ingress gateway (deploy/gateways/
// ingress: its Service 80→8080, 443→8443, 31400, its pod's labels, service
// account and Secret mounts) run by the real pilot-agent in router mode,
// unprivileged (UNPRIVILEGED_POD), serving, in turn:
// bookinfo on 8080 (the Service's targetPort for server port 80); an HTTPS
// server with serverCertificate/privateKey files (istio-agent serves them as
// SDS file-cert: names), then two such servers told apart by SNI, each with
// its own certificate; a PASSTHROUGH server routing by SNI to two backends
// that terminate TLS themselves; a TCP server routed by a VirtualService tcp
// route. Nothing is rejected by Envoy or counted by mizzen.
func TestAgentGatewayServerKinds(t *testing.T) {
	const gwNS = "istio-system"
	rig.IstioBinary(t, "pilot-agent")
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	applyBookinfo(t, m)

	// Backends: two that terminate TLS themselves, one TCP echo.
	for i, name := range []string{"tls-a", "tls-b"} {
		labels := map[string]string{"app": name}
		m.AddWorkload(t, rig.WorkloadSpec{Name: name + "-0", Labels: labels, IP: fmt.Sprintf("198.18.31.%d", i+1),
			App: rig.AppSpec{TLSPorts: []int{8443}, TLSNames: []string{name + ".tls.example.com"}}})
		m.AddService(t, rig.ServiceSpec{Name: name, Selector: labels, Ports: []rig.ServicePort{{Name: "tls", Port: 8443}}})
	}
	tcpLabels := map[string]string{"app": "tcp-echo"}
	m.AddWorkload(t, rig.WorkloadSpec{Name: "tcp-echo-0", Labels: tcpLabels, IP: "198.18.31.3", App: rig.AppSpec{TCPPorts: []int{9000}}})
	m.AddService(t, rig.ServiceSpec{Name: "tcp-echo", Selector: tcpLabels, Ports: []rig.ServicePort{{Name: "tcp", Port: 9000}}})

	// deploy/'s ingress gateway: its Service, its pod (pilot-agent in router
	// mode, as the injector's gateway template makes it) with the Secrets
	// the Deployment mounts, plus one more (the book's §7.9 ingress:
	// istio-ingressgateway-certs, then -bookinfo-certs for a second host).
	dg := readDeployedGateway(t, "ingress")
	m.AddService(t, dg.service)
	mounts := dg.secretMounts
	if mounts["istio-ingressgateway-certs"] != "/etc/istio/ingressgateway-certs" {
		t.Fatalf("deploy/gateways/ingress mounts Secrets %v, want istio-ingressgateway-certs at /etc/istio/ingressgateway-certs", mounts)
	}
	mounts["istio-ingressgateway-bookinfo-certs"] = "/etc/istio/ingressgateway-bookinfo-certs"
	httpbinCert, httpbinKey := selfSignedCert(t, "httpbin.example.com")
	bookinfoCert, bookinfoKey := selfSignedCert(t, "bookinfo.example.com")
	for name, pair := range map[string][2][]byte{
		"istio-ingressgateway-certs":          {httpbinCert, httpbinKey},
		"istio-ingressgateway-bookinfo-certs": {bookinfoCert, bookinfoKey},
	} {
		if _, err := m.API.Clientset().CoreV1().Secrets(gwNS).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: gwNS}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": pair[0], "tls.key": pair[1]}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	g := m.AddAgent(t, rig.AgentSpec{Name: dg.name + "-0", Namespace: gwNS, IP: "198.18.30.10", ServiceAccount: dg.sa, Router: true,
		Labels: dg.labels, Annotations: dg.annotations, WorkloadName: dg.name, Env: map[string]string{"ISTIO_META_UNPRIVILEGED_POD": "true"},
		SecretMounts: mounts})
	t.Logf("mesh, bookinfo, backends and the gateway up in %s", time.Since(began).Round(time.Millisecond))

	// tlsGet: GET https://<sni>/<path> through the gateway's 8443 until check
	// accepts the answer; returns the certificate the gateway (or backend) showed.
	tlsGet := func(t *testing.T, sni, path string, check func(status int, r echo.Response) error) *tls.ConnectionState {
		t.Helper()
		addr := net.JoinHostPort(g.IP, "8443")
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: sni, InsecureSkipVerify: true}, //nolint:gosec // the test compares the certificate itself
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
			},
		}}
		var state *tls.ConnectionState
		err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+sni+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var r echo.Response
			_ = json.Unmarshal(raw, &r)
			if err := check(resp.StatusCode, r); err != nil {
				return err
			}
			state = resp.TLS
			return nil
		})
		if err != nil {
			names, _ := g.Envoy.ListenerNames(ctx)
			t.Fatalf("https://%s%s via %s: %v (listeners %v)", sni, path, addr, err, names)
		}
		return state
	}
	productpageAnswer := func(status int, r echo.Response) error {
		if status != 200 || r.Service != "productpage" {
			return fmt.Errorf("%d from %q", status, r.Service)
		}
		return nil
	}
	wantCert := func(t *testing.T, state *tls.ConnectionState, certPEM []byte) {
		t.Helper()
		b, _ := pem.Decode(certPEM)
		if got := state.PeerCertificates[0]; !bytes.Equal(got.Raw, b.Bytes) {
			t.Errorf("served the certificate of CN %s, want the mounted one's", got.Subject.CommonName)
		}
	}

	t.Run("bookinfo /productpage on the Service's targetPort 8080", func(t *testing.T) {
		start := time.Now()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		url := "http://" + net.JoinHostPort(g.IP, "8080") + "/productpage"
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var r echo.Response
			_ = json.Unmarshal(raw, &r)
			return productpageAnswer(resp.StatusCode, r)
		}); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		t.Logf("%s 200 from productpage after %s", url, time.Since(start).Round(time.Millisecond))
		names, err := g.Envoy.ListenerNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n == "0.0.0.0_80" {
				t.Errorf("listener 0.0.0.0_80 exists; the Service maps 80 to 8080 (listeners %v)", names)
			}
		}
	})

	t.Run("a gateway no Service selects binds the server port 80", func(t *testing.T) {
		// Selected by the Gateways (istio: ingressgateway), not by deploy/'s
		// Service (app differs): istiod binds the server ports as they are.
		labels := map[string]string{"istio": "ingressgateway", "app": "unlisted-gateway"}
		u := m.AddAgent(t, rig.AgentSpec{Name: "unlisted-gateway-0", Namespace: gwNS, IP: "198.18.30.11", ServiceAccount: dg.sa, Router: true,
			Labels: labels, WorkloadName: "unlisted-gateway", Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}})
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		url := "http://" + net.JoinHostPort(u.IP, "80") + "/productpage"
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var r echo.Response
			_ = json.Unmarshal(raw, &r)
			return productpageAnswer(resp.StatusCode, r)
		}); err != nil {
			names, _ := u.Envoy.ListenerNames(ctx)
			t.Fatalf("%s: %v (listeners %v)", url, err, names)
		}
		names, err := u.Envoy.ListenerNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, "0.0.0.0_80") || slices.Contains(names, "0.0.0.0_8080") {
			t.Errorf("listeners %v: want 0.0.0.0_80 and no 0.0.0.0_8080", names)
		}
		t.Logf("%s 200 from productpage; listeners %v", url, names)
	})

	filesServer := func(portName, host, dir string) string {
		return fmt.Sprintf(`  - port: {number: 443, name: %s, protocol: HTTPS}
    hosts: [%s]
    tls: {mode: SIMPLE, serverCertificate: %s/tls.crt, privateKey: %s/tls.key}
`, portName, host, dir, dir)
	}
	filesVS := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: files, namespace: istio-system}
spec:
  hosts: [httpbin.example.com, bookinfo.example.com]
  gateways: [files]
  http:
  - route:
    - destination: {host: productpage.default.svc.cluster.local, port: {number: 9080}}
`
	t.Run("HTTPS with certificate files: one, then two by SNI", func(t *testing.T) {
		m.API.Apply(t, "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: files, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n"+
			filesServer("https-httpbin", "httpbin.example.com", "/etc/istio/ingressgateway-certs")+"---\n"+filesVS)
		start := time.Now()
		wantCert(t, tlsGet(t, "httpbin.example.com", "/productpage", productpageAnswer), httpbinCert)
		t.Logf("one file certificate: https://httpbin.example.com 200 with it after %s", time.Since(start).Round(time.Millisecond))
		srcs, err := sdsSources(ctx, g.Envoy)
		if err != nil {
			t.Fatal(err)
		}
		name := "file-cert:/etc/istio/ingressgateway-certs/tls.crt~/etc/istio/ingressgateway-certs/tls.key"
		if got := strings.Join(srcs[name], ","); got != "sds-grpc" {
			t.Errorf("%s fetched from %q, want sds-grpc (istio-agent reads the files); all: %v", name, got, srcs)
		}

		m.API.Apply(t, "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: files, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n"+
			filesServer("https-httpbin", "httpbin.example.com", "/etc/istio/ingressgateway-certs")+
			filesServer("https-bookinfo", "bookinfo.example.com", "/etc/istio/ingressgateway-bookinfo-certs"))
		start = time.Now()
		wantCert(t, tlsGet(t, "bookinfo.example.com", "/productpage", productpageAnswer), bookinfoCert)
		wantCert(t, tlsGet(t, "httpbin.example.com", "/productpage", productpageAnswer), httpbinCert)
		t.Logf("two file certificates by SNI, each served with its own after %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("credentialNames: an RSA and an ECDSA certificate, picked by the client's algorithms", func(t *testing.T) {
		const host = "dual.example.com"
		rsaCert, rsaKey := selfSignedRSACert(t, host)
		ecCert, ecKey := selfSignedCert(t, host)
		for name, pair := range map[string][2][]byte{"dual-rsa": {rsaCert, rsaKey}, "dual-ecdsa": {ecCert, ecKey}} {
			if _, err := m.API.Clientset().CoreV1().Secrets(gwNS).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: gwNS}, Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": pair[0], "tls.key": pair[1]}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: dual, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-dual, protocol: HTTPS}
    hosts: [dual.example.com]
    tls: {mode: SIMPLE, credentialNames: [dual-rsa, dual-ecdsa]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: dual, namespace: istio-system}
spec:
  hosts: [dual.example.com]
  gateways: [dual]
  http:
  - route:
    - destination: {host: productpage.default.svc.cluster.local, port: {number: 9080}}
`)
		addr := net.JoinHostPort(g.IP, "8443")
		ecWant, _ := pem.Decode(ecCert)
		rsaWant, _ := pem.Decode(rsaCert)
		// Envoy serves the ECDSA certificate to a client that can take it
		// (Go's client offers ECDSA signature algorithms)...
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: &tls.Config{ServerName: host, InsecureSkipVerify: true}} //nolint:gosec // the certificate is compared
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			if got := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]; !bytes.Equal(got.Raw, ecWant.Bytes) {
				return fmt.Errorf("got a %s certificate, want the ECDSA one", got.PublicKeyAlgorithm)
			}
			return nil
		}); err != nil {
			t.Fatalf("ECDSA-capable client: %v", err)
		}
		// ...and the RSA one to a client offering RSA signatures only
		// (openssl s_client: Go's client cannot narrow its algorithms).
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		out, err := exec.CommandContext(rctx, "openssl", "s_client", "-connect", addr, "-servername", host, "-tls1_2",
			"-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256").CombinedOutput()
		i := bytes.Index(out, []byte("-----BEGIN CERTIFICATE"))
		if i < 0 {
			t.Fatalf("openssl s_client: no certificate (%v):\n%s", err, out)
		}
		b, _ := pem.Decode(out[i:])
		if b == nil || !bytes.Equal(b.Bytes, rsaWant.Bytes) {
			t.Fatalf("RSA-only client: not the RSA certificate:\n%s", out)
		}
		t.Logf("credentialNames: an ECDSA-capable client got the ECDSA certificate, an RSA-only client the RSA one")
	})

	t.Run("PASSTHROUGH by SNI to backends terminating TLS", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: passthrough, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: tls-passthrough, protocol: TLS}
    hosts: [tls-a.tls.example.com, tls-b.tls.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough, namespace: istio-system}
spec:
  hosts: ["*.tls.example.com"]
  gateways: [passthrough]
  tls:
  - match: [{port: 443, sniHosts: [tls-a.tls.example.com]}]
    route: [{destination: {host: tls-a.default.svc.cluster.local, port: {number: 8443}}}]
  - match: [{port: 443, sniHosts: [tls-b.tls.example.com]}]
    route: [{destination: {host: tls-b.default.svc.cluster.local, port: {number: 8443}}}]
`)
		for _, name := range []string{"tls-a", "tls-b"} {
			sni := name + ".tls.example.com"
			start := time.Now()
			state := tlsGet(t, sni, "/", func(status int, r echo.Response) error {
				if status != 200 || r.Pod != name+"-0" || r.SNI != sni {
					return fmt.Errorf("%d from pod %q (SNI it saw %q)", status, r.Pod, r.SNI)
				}
				return nil
			})
			if cn := state.PeerCertificates[0].Subject.CommonName; cn != sni {
				t.Errorf("SNI %s: certificate CN %q, want the backend's own (%s)", sni, cn, sni)
			}
			t.Logf("SNI %s: answered by %s-0 with its own certificate after %s", sni, name, time.Since(start).Round(time.Millisecond))
		}
		// The file-certificate servers on the same port still terminate.
		wantCert(t, tlsGet(t, "httpbin.example.com", "/productpage", productpageAnswer), httpbinCert)
	})

	t.Run("TCP server routed by a VirtualService tcp route", func(t *testing.T) {
		m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [tcp]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: tcp-echo.default.svc.cluster.local, port: {number: 9000}}}]
`)
		addr := net.JoinHostPort(g.IP, "31400")
		start := time.Now()
		var greet echo.TCPGreeting
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			rd := bufio.NewReader(conn)
			line, err := rd.ReadBytes('\n')
			if err != nil {
				return fmt.Errorf("greeting: %w", err)
			}
			if err := json.Unmarshal(line, &greet); err != nil || greet.Service != "tcp-echo" {
				return fmt.Errorf("greeting %q", line)
			}
			if _, err := conn.Write([]byte("ping\n")); err != nil {
				return err
			}
			echoed, err := rd.ReadString('\n')
			if err != nil || echoed != "ping\n" {
				return fmt.Errorf("echo %q: %v", echoed, err)
			}
			return nil
		}); err != nil {
			names, _ := g.Envoy.ListenerNames(ctx)
			t.Fatalf("tcp://%s: %v (listeners %v)", addr, err, names)
		}
		t.Logf("tcp://%s: greeted by %s and echoed after %s", addr, greet.Pod, time.Since(start).Round(time.Millisecond))
	})

	t.Run("AUTO_PASSTHROUGH: a sidecar's mTLS by SNI through to the destination's sidecar", func(t *testing.T) {
		// The client's sidecar sends Istio mTLS with SNI
		// outbound_.8080_._.web.default.svc.cluster.local to the gateway's
		// 15443 (a ServiceEntry whose endpoint is the gateway, as a remote
		// network's endpoints are); the gateway passes it, untouched, to
		// web's sidecar, which terminates it.
		webLabels := map[string]string{"app": "web"}
		m.AddWorkload(t, rig.WorkloadSpec{Name: "web-0", Labels: webLabels, ServiceAccount: "web", IP: "198.18.31.10", Sidecar: true,
			App: rig.AppSpec{Ports: []int{8080}}})
		m.AddService(t, rig.ServiceSpec{Name: "web", Selector: webLabels, Ports: []rig.ServicePort{{Name: "http", Port: 8080}}})
		client := m.AddWorkload(t, rig.WorkloadSpec{Name: "sleep-0", Labels: map[string]string{"app": "sleep"}, IP: "198.18.31.20", Sidecar: true})
		m.API.Apply(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: auto-passthrough, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web-via-gateway, namespace: default}
spec:
  hosts: [web.remote.example]
  addresses: [240.240.0.60]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 15443}
  endpoints:
  - address: %s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-via-gateway, namespace: default}
spec:
  host: web.remote.example
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      sni: outbound_.8080_._.web.default.svc.cluster.local
      subjectAltNames: [spiffe://cluster.local/ns/default/sa/web]
`, g.IP))
		start := time.Now()
		if err := rig.Eventually(ctx, 250*time.Millisecond, func(ctx context.Context) error {
			status, r, err := client.Echo(ctx, "GET", "http://240.240.0.60/auto", map[string]string{"Host": "web.remote.example"})
			if err != nil {
				return err
			}
			if status != 200 || r.Pod != "web-0" || r.Path != "/auto" {
				return fmt.Errorf("%d from pod %q", status, r.Pod)
			}
			// web's sidecar terminated the mTLS: it forwards the caller's identity.
			if xfcc := r.Header("x-forwarded-client-cert"); !strings.Contains(xfcc, "spiffe://cluster.local/ns/default/sa/default") {
				return fmt.Errorf("x-forwarded-client-cert %q, want the client sidecar's identity", xfcc)
			}
			return nil
		}); err != nil {
			names, _ := g.Envoy.ListenerNames(ctx)
			t.Fatalf("through AUTO_PASSTHROUGH: %v (gateway listeners %v)", err, names)
		}
		t.Logf("sleep-0 → gateway 15443 (SNI outbound_.8080_._.web.default.svc.cluster.local) → web-0's sidecar: 200 with the caller's SPIFFE ID after %s",
			time.Since(start).Round(time.Millisecond))
	})

	t.Run("SYNCED; nothing collides with the agent bootstrap; nothing rejected", func(t *testing.T) {
		// SDS is NOT SENT: the certificates are files the agent serves; the
		// namespace's Secrets are credentials mizzen would serve, but no
		// server names one, so Envoy asks for none.
		table, err := waitProxyStatusSynced(ctx, t, m.Mizzen, []string{agentPodName(g.Workload)}, nil)
		t.Logf("mizzen proxy-status:\n%s", table)
		if err != nil {
			t.Errorf("not SYNCED: %v", err)
		}
		bad, err := bootstrapCollisions(ctx, g.Envoy, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Error(b)
		}
		rej, err := envoyRejects(ctx, g.Envoy)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range rej {
			t.Errorf("%s = %d", k, v)
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := mt.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
	})
	t.Logf("TestAgentGatewayServerKinds took %s", time.Since(began).Round(time.Millisecond))
}

// selfSignedRSACert is selfSignedCert with an RSA 2048 key.
func selfSignedRSACert(t testing.TB, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}
