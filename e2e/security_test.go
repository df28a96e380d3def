package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestSecureCSRAndSDS proves the identity rule on the secure port with a real
// apiserver: certificates (from the CSR API or SDS over ADS) go only to
// callers whose service-account token the apiserver vouches for, and only
// for that token's identity. Every attack is refused and counted.
func TestSecureCSRAndSDS(t *testing.T) {
	api := rig.StartAPIServer(t)
	api.Apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: sec}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: a, namespace: sec}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: b, namespace: sec}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: doomed, namespace: sec}
`)
	mz := rig.StartMizzen(t, "--kubeconfig", api.Kubeconfig)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	root := publishedRoot(ctx, t, api, "sec")
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(root)) {
		t.Fatalf("istio-ca-root-cert holds no certificate")
	}
	// Proxies dial istiod by name; mizzen's serving certificate carries it
	// (and 127.0.0.1), signed by the mesh root: verified, not skipped.
	conn, err := grpc.NewClient(mz.SecureXDSAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	csrClient := pb.NewIstioCertificateServiceClient(conn)

	tokenA := requestToken(ctx, t, api, "sec", "a", "istio-ca")
	idA := "spiffe://cluster.local/ns/sec/sa/a"

	t.Run("CSR with a real token gets a chain for its identity that verifies against the published root", func(t *testing.T) {
		for _, asked := range []string{"", idA} { // istio-agent puts its ID in the CSR; a bare CSR is fine too
			key, csr := newCSR(t, asked)
			resp, err := csrClient.CreateCertificate(withToken(ctx, tokenA), &pb.IstioCertificateRequest{Csr: csr, ValidityDuration: 3600})
			if err != nil {
				t.Fatalf("CSR (asking %q): %v", asked, err)
			}
			leaf := verifyChain(t, resp.GetCertChain(), roots)
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != idA {
				t.Fatalf("certificate SANs %v, want exactly %s", leaf.URIs, idA)
			}
			if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
				t.Fatalf("certificate is not for the CSR's key")
			}
			if got := resp.GetCertChain()[len(resp.GetCertChain())-1]; got != root {
				t.Fatalf("last entry of the chain is not the published root")
			}
			if life := leaf.NotAfter.Sub(leaf.NotBefore); life > time.Hour+10*time.Minute {
				t.Fatalf("asked for 1h, got %s", life)
			}
		}
	})

	t.Run("identity attacks are refused and counted", func(t *testing.T) {
		before := metricsOf(ctx, t, mz)
		expired := forgeToken(t, api, "sec", "a", saUID(ctx, t, api, "sec", "a"), -time.Minute)
		validForged := forgeToken(t, api, "sec", "a", saUID(ctx, t, api, "sec", "a"), time.Hour)
		doomed := requestToken(ctx, t, api, "sec", "doomed", "istio-ca")
		if err := api.Clientset().CoreV1().ServiceAccounts("sec").Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The forged-token control: the same forging with a future expiry
		// is accepted, so the expired one is refused for its expiry alone.
		if _, err := csrClient.CreateCertificate(withToken(ctx, validForged), &pb.IstioCertificateRequest{Csr: csrOnly(t, idA)}); err != nil {
			t.Fatalf("control: forged token that is not expired was refused: %v", err)
		}
		cases := []struct {
			name, token, asks string
			code              codes.Code
		}{
			{"token of SA a asking for SA b's certificate", tokenA, "spiffe://cluster.local/ns/sec/sa/b", codes.PermissionDenied},
			{"expired token", expired, "", codes.Unauthenticated},
			{"token for another audience", requestToken(ctx, t, api, "sec", "a", "not-istio-ca"), "", codes.Unauthenticated},
			{"no token", "", "", codes.Unauthenticated},
			{"garbage token", "abcd", "", codes.Unauthenticated},
			{"token of a deleted service account", doomed, "", codes.Unauthenticated},
		}
		for _, c := range cases {
			cctx := ctx
			if c.token != "" {
				cctx = withToken(ctx, c.token)
			}
			resp, err := csrClient.CreateCertificate(cctx, &pb.IstioCertificateRequest{Csr: csrOnly(t, c.asks)})
			if err == nil || status.Code(err) != c.code {
				t.Errorf("%s: got %v (chain of %d), want %s", c.name, err, len(resp.GetCertChain()), c.code)
				continue
			}
			t.Logf("%s: refused: %v", c.name, err)
		}
		after := metricsOf(ctx, t, mz)
		if got := after.Sum("citadel_server_authentication_failure_count") - before.Sum("citadel_server_authentication_failure_count"); got < float64(len(cases)) {
			t.Errorf("citadel_server_authentication_failure_count grew by %v, want %d", got, len(cases))
		}
		if got := after.Sum("citadel_server_success_cert_issuance_count") - before.Sum("citadel_server_success_cert_issuance_count"); got != 1 {
			t.Errorf("certificates issued during the attacks: %v, want 1 (the control)", got)
		}
	})

	t.Run("SDS over ADS: default and ROOTCA for the token's identity", func(t *testing.T) {
		ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
		node := sdsNode("sec", "a")
		secrets := fetchSecrets(ctx, t, ads, tokenA, node)
		def, ok := secrets["default"]
		if !ok {
			t.Fatalf("no default secret in %v", keys(secrets))
		}
		leaf := verifyChain(t, splitPEMChain(def.GetTlsCertificate().GetCertificateChain().GetInlineBytes()), roots)
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != idA {
			t.Fatalf("default certificate SANs %v, want %s", leaf.URIs, idA)
		}
		if _, err := tls.X509KeyPair(def.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), def.GetTlsCertificate().GetPrivateKey().GetInlineBytes()); err != nil {
			t.Fatalf("default secret's key does not match its certificate: %v", err)
		}
		if got := string(secrets["ROOTCA"].GetValidationContext().GetTrustedCa().GetInlineBytes()); got != root {
			t.Fatalf("ROOTCA is not the published root")
		}
	})

	t.Run("xDS streams whose node claims another namespace or SA, or bring no token, are refused", func(t *testing.T) {
		ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
		before := metricsOf(ctx, t, mz)
		for _, c := range []struct {
			name, token string
			node        *core.Node
		}{
			{"namespace claimed by metadata", tokenA, sdsNode("kube-system", "a")},
			{"service account claimed by metadata", tokenA, sdsNode("sec", "b")},
			{"no token", "", sdsNode("sec", "a")},
		} {
			sctx := ctx
			if c.token != "" {
				sctx = withToken(ctx, c.token)
			}
			got, err := trySecrets(sctx, ads, c.node)
			if err == nil {
				t.Errorf("%s: stream got %d secrets, want it refused", c.name, len(got))
				continue
			}
			t.Logf("%s: refused: %v", c.name, err)
		}
		after := metricsOf(ctx, t, mz)
		if got := after.Sum("mizzen_xds_identity_refusals_total") - before.Sum("mizzen_xds_identity_refusals_total"); got != 2 {
			t.Errorf("mizzen_xds_identity_refusals_total grew by %v, want 2", got)
		}
	})
}

func metricsOf(ctx context.Context, t *testing.T, mz *rig.Mizzen) rig.Metrics {
	t.Helper()
	m, err := mz.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// publishedRoot waits for mizzen's root in the namespace's istio-ca-root-cert.
func publishedRoot(ctx context.Context, t testing.TB, api *rig.APIServer, ns string) string {
	t.Helper()
	var root string
	if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		cm, err := api.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		root = cm.Data["root-cert.pem"]
		return nil
	}); err != nil {
		t.Fatalf("istio-ca-root-cert in %s: %v", ns, err)
	}
	return root
}

// requestToken asks the apiserver (TokenRequest) for a token of ns/sa, as the
// kubelet does for a projected istio-token volume.
func requestToken(ctx context.Context, t testing.TB, api *rig.APIServer, ns, sa, audience string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := api.Clientset().CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

func saUID(ctx context.Context, t *testing.T, api *rig.APIServer, ns, name string) string {
	t.Helper()
	sa, err := api.Clientset().CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(sa.UID)
}

// forgeToken signs a service-account token with the apiserver's own signing
// key, expiring after validFor (negative: already expired). TokenRequest will
// not issue tokens shorter than 10 minutes, so this is how a test gets an
// expired token that is otherwise perfectly valid.
func forgeToken(t *testing.T, api *rig.APIServer, ns, sa, uid string, validFor time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(api.SAKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	enc := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	claims := map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:" + ns + ":" + sa,
		"aud": []string{"istio-ca"},
		"iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(),
		"exp":           now.Add(validFor).Unix(),
		"kubernetes.io": map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": sa, "uid": uid}},
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// newCSR makes a CSR, with URI SAN id if not empty.
func newCSR(t *testing.T, id string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"e2e"}}}
	if id != "" {
		u, err := url.Parse(id)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func csrOnly(t *testing.T, id string) string { _, c := newCSR(t, id); return c }

// verifyChain checks a leaf-first chain (intermediates and maybe the root
// after it) against roots and returns the leaf.
func verifyChain(t *testing.T, chain []string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for _, p := range chain {
		blk, _ := pem.Decode([]byte(p))
		if blk == nil {
			t.Fatalf("chain entry is not PEM")
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("empty chain")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("chain does not verify against the published root: %v", err)
	}
	return certs[0]
}

func splitPEMChain(b []byte) []string {
	var out []string
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(blk)))
	}
}

func sdsNode(ns, sa string) *core.Node {
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns, "SERVICE_ACCOUNT": sa})
	return &core.Node{Id: fmt.Sprintf("sidecar~198.18.99.%d~sds-probe.%s~%s.svc.cluster.local", randByte(), ns, ns), Metadata: md}
}

func randByte() int {
	n, _ := rand.Int(rand.Reader, big.NewInt(250))
	return int(n.Int64()) + 1
}

func fetchSecrets(ctx context.Context, t *testing.T, ads discovery.AggregatedDiscoveryServiceClient, token string, node *core.Node) map[string]*tlsv3.Secret {
	t.Helper()
	got, err := trySecrets(withToken(ctx, token), ads, node)
	if err != nil {
		t.Fatalf("SDS: %v", err)
	}
	return got
}

// trySecrets opens an ADS stream and asks for the two secrets; it returns
// what the first response carries, or the stream's error.
func trySecrets(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient, node *core.Node) (map[string]*tlsv3.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{"default", "ROOTCA"}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	out := map[string]*tlsv3.Secret{}
	for _, a := range resp.GetResources() {
		s := &tlsv3.Secret{}
		if err := a.UnmarshalTo(s); err != nil {
			return nil, err
		}
		out[s.GetName()] = s
	}
	return out, nil
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
