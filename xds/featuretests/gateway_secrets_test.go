package featuretests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/xds"
)

// selfSigned makes a certificate and key PEM for host.
func selfSigned(t testing.TB, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
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

// secureGatewayInputs: one HTTPS Gateway server with a credential in
// istio-system, and a same-named Secret in another namespace.
func secureGatewayInputs(t testing.TB) *model.Inputs {
	crt, key := selfSigned(t, "secure.example.com")
	other, otherKey := selfSigned(t, "other.example.com")
	return &model.Inputs{
		Secrets: []*corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Name: "secure-cred", Namespace: "istio-system"}, Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": crt, "tls.key": key}},
			{ObjectMeta: metav1.ObjectMeta{Name: "other-cred", Namespace: "team-b"}, Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": other, "tls.key": otherKey}},
		},
		Gateways: []*networking.Gateway{{
			ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system"},
			Spec: networkingapi.Gateway{
				Selector: map[string]string{"istio": "ingressgateway"},
				Servers: []*networkingapi.Server{{
					Port:  &networkingapi.Port{Number: 443, Name: "https", Protocol: "HTTPS"},
					Hosts: []string{"secure.example.com"},
					Tls:   &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE, CredentialName: "secure-cred"},
				}},
			},
		}},
	}
}

// istiod's rule for gateway credentials: only to a gateway of the Secret's
// namespace whose stream proved an identity. A gateway without one gets no
// HTTPS listener and no `kubernetes://` secret even when it asks by name; a
// gateway with one gets its namespace's credential and not another's.
func TestGatewayCredentialsNeedIdentity(t *testing.T) {
	h := newHarness(t)
	h.start(secureGatewayInputs(t))
	gw := h.connect(node("router", "127.0.0.30", "gw-0", "istio-system", map[string]string{"istio": "ingressgateway"}))
	gw.subscribe(resourcev3.ListenerType)
	gw.syncFull()
	if gw.has(resourcev3.ListenerType, "0.0.0.0_443") {
		t.Error("a gateway without identity got the HTTPS listener, whose secret it can never get")
	}
	gw.subscribe(resourcev3.SecretType, "kubernetes://secure-cred")
	gw.expectNone(quiet)
	if gw.has(resourcev3.SecretType, "kubernetes://secure-cred") {
		t.Fatal("a gateway without identity was served a credential")
	}
}

func TestGatewayCredentialsServedToProvenGateway(t *testing.T) {
	ca := testCA(t)
	h := newHarness(t, func(o *xds.Options) {
		o.CA = func() *certs.CA { return ca }
		o.InsecureDevIdentity = true // stands in for a TokenReview-proven identity
		o.TrustDomain = "cluster.local"
	})
	in := secureGatewayInputs(t)
	h.start(in)
	// A gateway mizzen bootstrapped: its own certificate comes over ADS too.
	gw := h.connect(mizzenNode("router", "127.0.0.30", "gw-0", "istio-system", map[string]string{"istio": "ingressgateway"}, "127.0.0.1:15000"))
	gw.subscribe(resourcev3.ListenerType)
	gw.syncUntil("the HTTPS listener", func() bool { return gw.has(resourcev3.ListenerType, "0.0.0.0_443") })
	gw.subscribe(resourcev3.SecretType, "default", "ROOTCA", "kubernetes://secure-cred", "kubernetes://other-cred")
	gw.syncUntil("the credential", func() bool { return gw.has(resourcev3.SecretType, "kubernetes://secure-cred") })
	for _, n := range []string{"default", "ROOTCA"} {
		if !gw.has(resourcev3.SecretType, n) {
			t.Errorf("gateway lost its own secret %s", n)
		}
	}
	if gw.has(resourcev3.SecretType, "kubernetes://other-cred") {
		t.Error("a gateway got another namespace's credential")
	}
	sec := gw.resource(resourcev3.SecretType, "kubernetes://secure-cred").(*tlsv3.Secret)
	if string(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) != string(in.Secrets[0].Data["tls.crt"]) {
		t.Error("served certificate is not the Secret's")
	}

	// A renewed Secret reaches the gateway on the open stream.
	crt, key := selfSigned(t, "secure.example.com")
	in.Secrets[0] = in.Secrets[0].DeepCopy()
	in.Secrets[0].Data = map[string][]byte{"tls.crt": crt, "tls.key": key}
	h.update(in)
	gw.syncUntil("the renewed credential", func() bool {
		s, _ := gw.resource(resourcev3.SecretType, "kubernetes://secure-cred").(*tlsv3.Secret)
		return string(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) == string(crt)
	})
}

func testCA(t testing.TB) *certs.CA {
	t.Helper()
	ca, err := certs.LoadOrCreate(context.Background(), certs.FileStore{Dir: t.TempDir()}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
