package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestBookinfoGatewayFileCertificates: a gateway Envoy mizzen bootstrapped
// (bookinfo's, no istio-agent) serves Gateway servers whose certificates are
// files in its own filesystem, which Envoy reads itself: SIMPLE answers with
// the file's certificate; MUTUAL with caCertificates lets through a client
// whose certificate that CA signed and refuses one without a certificate and
// one with another CA's.
func TestBookinfoGatewayFileCertificates(t *testing.T) {
	b := rig.Bookinfo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	serverCert, serverKey := selfSignedCert(t, "files.example.com")
	caCert, caKey := selfSignedCert(t, "client-ca")
	goodCert, goodKey := signedBy(t, "client.example.com", caCert, caKey)
	for name, data := range map[string][]byte{"tls.crt": serverCert, "tls.key": serverKey, "ca.crt": caCert} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.WriteConfig(t, "files-gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: files, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9444, name: https-files, protocol: HTTPS}
    hosts: [files.example.com]
    tls: {mode: SIMPLE, serverCertificate: %[1]s/tls.crt, privateKey: %[1]s/tls.key, minProtocolVersion: TLSV1_2}
  - port: {number: 9445, name: https-mutual-files, protocol: HTTPS}
    hosts: [files.example.com]
    tls: {mode: MUTUAL, serverCertificate: %[1]s/tls.crt, privateKey: %[1]s/tls.key, caCertificates: %[1]s/ca.crt}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: files, namespace: istio-system}
spec:
  hosts: [files.example.com]
  gateways: [files]
  http:
  - route:
    - destination: {host: productpage.default.svc.cluster.local, port: {number: 9080}}
`, dir))

	serverWant, _ := pem.Decode(serverCert)
	get := func(ctx context.Context, port string, client *tls.Certificate) (int, echo.Response, *tls.ConnectionState, error) {
		cfg := &tls.Config{ServerName: "files.example.com", InsecureSkipVerify: true} //nolint:gosec // the certificate is compared
		if client != nil {
			cfg.Certificates = []tls.Certificate{*client}
		}
		addr := net.JoinHostPort(b.GatewayIP, port)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
			}}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://files.example.com/productpage", nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, echo.Response{}, nil, err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var r echo.Response
		_ = json.Unmarshal(raw, &r)
		return resp.StatusCode, r, resp.TLS, nil
	}

	t.Run("SIMPLE: the file's certificate", func(t *testing.T) {
		start := time.Now()
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			status, r, state, err := get(ctx, "9444", nil)
			if err != nil {
				return err
			}
			if status != 200 || r.Service != "productpage" {
				return fmt.Errorf("%d from %q", status, r.Service)
			}
			if !bytes.Equal(state.PeerCertificates[0].Raw, serverWant.Bytes) {
				return fmt.Errorf("served CN %s, not the file's certificate", state.PeerCertificates[0].Subject.CommonName)
			}
			return nil
		}); err != nil {
			names, _ := b.Gateway.ListenerNames(ctx)
			t.Fatalf("https://files.example.com:9444: %v (listeners %v)\n%s", err, names, b.Mizzen.Log())
		}
		t.Logf("SIMPLE from files: 200 with the file's certificate after %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("MUTUAL: a client certificate from caCertificates is required", func(t *testing.T) {
		good, err := tls.X509KeyPair(goodCert, goodKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			status, r, _, err := get(ctx, "9445", &good)
			if err != nil {
				return err
			}
			if status != 200 || r.Service != "productpage" {
				return fmt.Errorf("%d from %q", status, r.Service)
			}
			return nil
		}); err != nil {
			t.Fatalf("with a client certificate the CA signed: %v", err)
		}
		if _, _, _, err := get(ctx, "9445", nil); !tlsRefused(err) {
			t.Errorf("without a client certificate: %v, want a TLS alert", err)
		}
		// A certificate of another CA is refused too.
		stranger, strangerKey := selfSignedCert(t, "stranger")
		sc, err := tls.X509KeyPair(stranger, strangerKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := get(ctx, "9445", &sc); !tlsRefused(err) {
			t.Errorf("with a certificate of another CA: %v, want a TLS alert", err)
		}
		t.Logf("MUTUAL from files: the CA's client in, no certificate and another CA's out")
	})
}

// tlsRefused reports whether a request failed because the server refused
// the handshake. In TLS 1.3 the client finishes first and may already be
// writing its request when Envoy's alert and close arrive: the write then
// fails with a broken pipe or a reset instead of the alert.
func tlsRefused(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "tls:") || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
