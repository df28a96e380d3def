package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"sync"
	"testing"
	"time"
)

// fakeClock lets tests see when a goroutine is waiting and release it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	waiting chan time.Duration // each After call is reported here
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waiting: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	c.mu.Unlock()
	c.waiting <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(name string, now time.Time, life time.Duration) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(life),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func pemKey(t *testing.T, k crypto.PrivateKey) []byte {
	t.Helper()
	b, err := encodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// plugInMaterial builds root -> intermediate like an operator's cacerts
// Secret, cert-chain.pem holding the intermediate then the root.
func plugInMaterial(t *testing.T, now time.Time) (*Material, *x509.Certificate) {
	t.Helper()
	rootKey, interKey := mustKey(t), mustKey(t)
	root := mustCert(t, caTemplate("test root", now, 365*24*time.Hour), nil, rootKey.Public(), rootKey)
	inter := mustCert(t, caTemplate("test intermediate", now, 180*24*time.Hour), root, interKey.Public(), rootKey)
	return &Material{
		CACert:    encodeCert(inter),
		CAKey:     pemKey(t, interKey),
		RootCert:  encodeCert(root),
		CertChain: append(encodeCert(inter), encodeCert(root)...),
	}, root
}

// csrPEM makes a CSR that asks for an identity it should not get.
func csrPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	evil, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		DNSNames: []string{"kubernetes.default.svc"},
		URIs:     []*url.URL{evil},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
