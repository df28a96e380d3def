package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestKubeSecureGateway is Istio's "Secure Gateways" task in Kubernetes mode:
// a TLS Secret made here, a Gateway with an HTTPS server naming it by
// credentialName and an HTTP server redirecting to https, a VirtualService to
// a backend (a ServiceEntry with a static loopback endpoint: the apiserver
// refuses loopback EndpointSlices). The gateway Envoy proves its identity on
// mizzen's secure port with a service-account token, as an injected one does,
// so it is served the credential over SDS. A Go client then checks the
// certificate, the routing, a certificate renewal without restart, a MUTUAL
// server's client-certificate check (CA from `<name>-cacert`), and the 301.
func TestKubeSecureGateway(t *testing.T) {
	const (
		gwIP, host         = "127.0.0.30", "secure.example.com"
		backendIP          = "127.0.0.35"
		httpPort, tlsPort  = 18080, 18443
		mtlsPort           = 18444
		gwSA               = "secure-gateway"
		secretName         = "secure-credential"
		secretNS           = "istio-system"
		gatewayNodeIDAndIP = "router~" + gwIP + "~gw-0.istio-system~istio-system.svc.cluster.local"
	)
	api := rig.StartAPIServer(t)
	api.Apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: `+gwSA+`, namespace: istio-system}
`)
	mz := rig.StartMizzen(t, "--kubeconfig", api.Kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	core := api.Clientset().CoreV1()

	backend, err := echo.Start(net.JoinHostPort(backendIP, "0"), echo.Options{Service: "secure-backend", Version: "v1", Pod: "secure-backend-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	_, backendPort, _ := net.SplitHostPort(backend.Addr)

	certPEM, keyPEM := selfSignedCert(t, host)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: secretNS},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM},
	}
	if _, err := core.Secrets(secretNS).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// MUTUAL: the server certificate in one Secret, the CA that signs
	// client certificates in `<name>-cacert` (key ca.crt), as Istio reads them.
	mutualCert, mutualKey := selfSignedCert(t, host)
	clientCA, clientCAKey := selfSignedCert(t, "client-ca")
	for _, sec := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "mutual-credential", Namespace: secretNS}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": mutualCert, "tls.key": mutualKey}},
		{ObjectMeta: metav1.ObjectMeta{Name: "mutual-credential-cacert", Namespace: secretNS}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"ca.crt": clientCA}},
	} {
		if _, err := core.Secrets(secretNS).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	api.Apply(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure-backend, namespace: istio-system}
spec:
  hosts: [backend.secure.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: %[1]s}
  endpoints:
  - address: %[2]s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[3]d, name: http, protocol: HTTP}
    hosts: [%[5]s]
    tls: {httpsRedirect: true}
  - port: {number: %[4]d, name: https, protocol: HTTPS}
    hosts: [%[5]s]
    tls: {mode: SIMPLE, credentialName: %[6]s}
  - port: {number: %[7]d, name: https-mutual, protocol: HTTPS}
    hosts: [%[5]s]
    tls: {mode: MUTUAL, credentialName: mutual-credential}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: istio-system}
spec:
  hosts: [%[5]s]
  gateways: [secure-gateway]
  http:
  - route:
    - destination: {host: backend.secure.test, port: {number: 80}}
`, backendPort, backendIP, httpPort, tlsPort, host, secretName, mtlsPort))

	// The gateway's identity: a TokenRequest token for its ServiceAccount
	// (audience istio-ca) and the mesh root mizzen publishes, as files.
	exp := int64(3600)
	tr, err := core.ServiceAccounts(secretNS).CreateToken(ctx, gwSA, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var root string
	if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		cm, err := core.ConfigMaps(secretNS).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		root = cm.Data["root-cert.pem"]
		return nil
	}); err != nil {
		t.Fatalf("istio-ca-root-cert: %v", err)
	}
	dir := t.TempDir()
	tokenPath, rootPath := filepath.Join(dir, "istio-token"), filepath.Join(dir, "root-cert.pem")
	for p, d := range map[string]string{tokenPath: tr.Status.Token, rootPath: root} {
		if err := os.WriteFile(p, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gw := rig.StartEnvoy(t, rig.EnvoyOptions{
		NodeID:  gatewayNodeIDAndIP,
		Cluster: "istio-ingressgateway.istio-system",
		Metadata: map[string]any{
			"NAMESPACE": secretNS, "SERVICE_ACCOUNT": gwSA, "LABELS": map[string]any{"istio": "ingressgateway"},
			"INSTANCE_IPS": gwIP, "CLUSTER_ID": "Kubernetes", rig.GatewayBindIPKey: gwIP,
		},
		XDSAddr: mz.SecureXDSAddr,
		Secure:  &rig.SecureXDS{RootCertPath: rootPath, TokenPath: tokenPath},
	})

	tlsAddr := net.JoinHostPort(gwIP, strconv.Itoa(tlsPort))
	// get does one HTTPS GET with SNI host, trusting only want, and returns
	// the status and the echo service that answered.
	get := func(ctx context.Context, want []byte) (int, string, error) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(want)
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: pool},
			DisableKeepAlives: true, // each try is a fresh handshake
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", tlsAddr)
			},
		}}
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+host+"/hello", nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
			return 0, "", fmt.Errorf("no peer certificate")
		}
		blk, _ := pem.Decode(want)
		if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, blk.Bytes) {
			return 0, "", fmt.Errorf("gateway served another certificate (CN %s)", resp.TLS.PeerCertificates[0].Subject.CommonName)
		}
		return resp.StatusCode, resp.Header.Get(echo.HeaderService), nil
	}
	waitServes := func(what string, cert []byte) {
		t.Helper()
		var last string
		err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			if gw.Exited() {
				return fmt.Errorf("gateway envoy exited")
			}
			status, svc, err := get(ctx, cert)
			if err != nil {
				last = err.Error()
				return err
			}
			if status != 200 || svc != "secure-backend" {
				last = fmt.Sprintf("%d from %q", status, svc)
				return fmt.Errorf("%s", last)
			}
			return nil
		})
		if err != nil {
			names, _ := gw.ListenerNames(context.Background())
			t.Fatalf("%s: %v (last: %s; gateway listeners %v)", what, err, last, names)
		}
	}

	t.Run("HTTPS with SNI answers 200 with the Secret's certificate", func(t *testing.T) {
		waitServes("first certificate", certPEM)
	})

	t.Run("a replaced Secret is served without restart", func(t *testing.T) {
		newCert, newKey := selfSignedCert(t, host)
		cur, err := core.Secrets(secretNS).Get(ctx, secretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Data = map[string][]byte{"tls.crt": newCert, "tls.key": newKey}
		start := time.Now()
		if _, err := core.Secrets(secretNS).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitServes("renewed certificate", newCert)
		t.Logf("renewed certificate served %s after the Secret update", time.Since(start).Round(time.Millisecond))
		if gw.Exited() {
			t.Fatal("gateway restarted")
		}
	})

	t.Run("MUTUAL: a client certificate from the -cacert CA is required", func(t *testing.T) {
		clientCert, clientKey := signedBy(t, "client", clientCA, clientCAKey)
		pair, err := tls.X509KeyPair(clientCert, clientKey)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(mutualCert)
		mtlsAddr := net.JoinHostPort(gwIP, strconv.Itoa(mtlsPort))
		do := func(ctx context.Context, certs []tls.Certificate) (int, error) {
			c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: pool, Certificates: certs},
				DisableKeepAlives: true,
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", mtlsAddr)
				},
			}}
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+host+"/mutual", nil)
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			st, err := do(ctx, []tls.Certificate{pair})
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d", st)
			}
			return err
		}); err != nil {
			t.Fatalf("with a client certificate: %v", err)
		}
		if st, err := do(ctx, nil); err == nil {
			t.Errorf("without a client certificate: %d, want a refused handshake", st)
		}
		// A certificate from another CA is refused too.
		otherCA, otherKey := selfSignedCert(t, "other-ca")
		oc, ok := signedBy(t, "client", otherCA, otherKey)
		otherPair, _ := tls.X509KeyPair(oc, ok)
		if st, err := do(ctx, []tls.Certificate{otherPair}); err == nil {
			t.Errorf("with a client certificate of another CA: %d, want a refused handshake", st)
		}
	})

	t.Run("httpsRedirect answers 301 to https", func(t *testing.T) {
		c := &http.Client{Timeout: 3 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		url := "http://" + net.JoinHostPort(gwIP, strconv.Itoa(httpPort)) + "/hello"
		var got string
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Host = host
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			got = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://"+host+"/hello" {
				return fmt.Errorf("got %s", got)
			}
			return nil
		}); err != nil {
			t.Fatalf("GET %s (Host %s): %v", url, host, err)
		}
	})
}

// selfSignedCert makes a fresh self-signed certificate and key for host.
func selfSignedCert(t testing.TB, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// signedBy makes a client certificate for cn signed by the CA caPEM/caKeyPEM.
func signedBy(t testing.TB, cn string, caPEM, caKeyPEM []byte) (certPEM, keyPEM []byte) {
	t.Helper()
	cb, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(caKeyPEM)
	caKey, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k})
}
