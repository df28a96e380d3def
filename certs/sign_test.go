package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestSignIgnoresCSRIdentity(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := newFakeClock(t0)
	ca := newTestCA(t, Options{Clock: clock})
	key := mustKey(t)
	id := SpiffeID("cluster.local", "shop", "cart")

	chainPEM, err := ca.Sign(csrPEM(t, key), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Verify at the fake time: the leaf lives in 2026.
	chain, _ := parseCerts(chainPEM)
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: poolOf(ca.SigningCert()), CurrentTime: t0,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatal(err)
	}
	if len(chain) != 1 {
		t.Errorf("self-signed CA returned %d certs, want the leaf only", len(chain))
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		t.Fatalf("URI SANs = %v, want exactly [%s]", leaf.URIs, id)
	}
	if len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 {
		t.Errorf("CSR-requested SANs leaked: dns=%v email=%v ip=%v", leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses)
	}
	if len(leaf.Subject.Names) != 0 {
		t.Errorf("CSR subject leaked: %v", leaf.Subject)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("leaf key is not the CSR's key")
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("IsCA=%v KeyUsage=%v", leaf.IsCA, leaf.KeyUsage)
	}
	if eku := leaf.ExtKeyUsage; len(eku) != 2 || eku[0] != x509.ExtKeyUsageServerAuth || eku[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v", eku)
	}
	if !leaf.NotBefore.Before(t0) || t0.Sub(leaf.NotBefore) > backdate {
		t.Errorf("NotBefore %v not slightly before %v", leaf.NotBefore, t0)
	}
	if want := t0.Add(DefaultCertTTL); !leaf.NotAfter.Equal(want) {
		t.Errorf("NotAfter %v, want %v (default TTL)", leaf.NotAfter, want)
	}
	if leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v not a positive 128-bit number", leaf.SerialNumber)
	}
	chain2, err := ca.Sign(csrPEM(t, key), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf2, _ := ParseFirstCert(chain2)
	if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("serial reused")
	}
}

func TestSignTTLAndIdentityChecks(t *testing.T) {
	ca := newTestCA(t, Options{MaxTTL: time.Hour, TrustDomain: "example.org"})
	csr := csrPEM(t, mustKey(t))
	good := SpiffeID("example.org", "ns", "sa")
	if c, err := ca.Sign(csr, good, 2*time.Minute); err != nil {
		t.Fatal(err)
	} else if l, _ := ParseFirstCert(c); l.NotAfter.Sub(l.NotBefore) != 2*time.Minute+12*time.Second {
		t.Errorf("2m leaf lifetime %v, want 2m plus 12s backdate", l.NotAfter.Sub(l.NotBefore))
	}
	for _, tc := range []struct {
		id   string
		ttl  time.Duration
		want string
	}{
		{good, 2 * time.Hour, "exceeds the maximum"},
		{good, -time.Second, "negative TTL"},
		{SpiffeID("cluster.local", "ns", "sa"), 0, "not this CA's"},
		{"spiffe://example.org/ns/a/sa/b/extra", 0, "want spiffe://"},
		{"spiffe://example.org/ns/../sa/b", 0, "dot segment"},
		{"https://example.org/ns/a/sa/b", 0, "scheme"},
	} {
		if _, err := ca.Sign(csr, tc.id, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Sign(%q, %v): got %v, want error containing %q", tc.id, tc.ttl, err, tc.want)
		}
	}
}

func TestSignRejectsHostileCSRs(t *testing.T) {
	ca := newTestCA(t, Options{})
	id := SpiffeID("cluster.local", "default", "web")

	valid := csrPEM(t, mustKey(t))
	block, _ := pem.Decode(valid)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	// A different key's signature over the same request info.
	swapped := csrPEM(t, mustKey(t))

	cases := []struct {
		name string
		csr  []byte
		want string
	}{
		{"bad signature", pemCSR(tampered), "signature"},
		{"signature by another key", spliceKey(t, swapped, valid), "signature"},
		{"RSA 1024", csrPEM(t, rsa1024), "RSA key of 1024 bits"},
		{"ed25519", csrPEM(t, edKey), "unsupported key type"},
		{"P-224", csrPEM(t, p224), "unsupported EC curve"},
		{"DSA", pemCSR(rawCSR(t, dsaOID, dsaParams(t), mustMarshal(t, big.NewInt(5)), dsaSHA256OID)), "unsupported key type *dsa.PublicKey"},
		{"no key algorithm", pemCSR(rawCSR(t, asn1.ObjectIdentifier{1, 2, 3, 4}, nil, []byte{1, 2, 3}, asn1.ObjectIdentifier{1, 2, 3, 5})), "unrecognised public key algorithm"},
		{"oversized", append(bytes.Repeat([]byte(" "), DefaultMaxCSRBytes), valid...), "exceeds"},
		{"garbage", []byte("definitely not a CSR"), "not PEM"},
		{"garbage in PEM", pemCSR([]byte("nope")), "parse CSR"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), "want CERTIFICATE REQUEST"},
		{"trailing data", append(bytes.Clone(valid), valid...), "trailing data"},
		{"empty", nil, "not PEM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ca.Sign(tc.csr, id, 0)
			if err == nil {
				t.Fatalf("hostile CSR signed: %s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	// The accepted key types, for contrast.
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, k := range []crypto.Signer{rsa2048, p384} {
		if _, err := ca.Sign(csrPEM(t, k), id, 0); err != nil {
			t.Errorf("%T rejected: %v", k.Public(), err)
		}
	}
}

func TestGenerateLeaf(t *testing.T) {
	ca := newTestCA(t, Options{})
	id := SpiffeID("cluster.local", "default", "web")
	chain, keyPEM, err := ca.GenerateLeaf(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyLeaf(t, chain, ca.RootCertPEM())
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() || !ek.PublicKey.Equal(leaf.PublicKey) {
		t.Fatalf("key %T is not the leaf's EC P-256 key", key)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		t.Fatalf("URIs = %v", leaf.URIs)
	}
}

var (
	dsaOID       = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	dsaSHA256OID = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 2}
)

func pemCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dsaParams(t *testing.T) []byte {
	return mustMarshal(t, struct{ P, Q, G *big.Int }{big.NewInt(23), big.NewInt(11), big.NewInt(4)})
}

// rawCSR hand-assembles a PKCS#10 request, since crypto/x509 refuses to
// create the odd ones an attacker would send.
func rawCSR(t *testing.T, keyAlg asn1.ObjectIdentifier, params, keyBytes []byte, sigAlg asn1.ObjectIdentifier) []byte {
	t.Helper()
	type spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	type info struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  spki
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}
	type req struct {
		Info   info
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}
	alg := pkix.AlgorithmIdentifier{Algorithm: keyAlg}
	if params != nil {
		alg.Parameters = asn1.RawValue{FullBytes: params}
	}
	return mustMarshal(t, req{
		Info: info{
			Subject:   asn1.RawValue{FullBytes: mustMarshal(t, pkix.RDNSequence{})},
			PublicKey: spki{alg, asn1.BitString{Bytes: keyBytes, BitLength: 8 * len(keyBytes)}},
		},
		SigAlg: pkix.AlgorithmIdentifier{Algorithm: sigAlg},
		Sig:    asn1.BitString{Bytes: []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, BitLength: 64},
	})
}

// spliceKey puts victim's public key into attacker's request, keeping the
// attacker's signature: a CSR claiming a key its author does not hold.
func spliceKey(t *testing.T, attacker, victim []byte) []byte {
	t.Helper()
	a, _ := pem.Decode(attacker)
	v, _ := pem.Decode(victim)
	ac, err := x509.ParseCertificateRequest(a.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := x509.ParseCertificateRequest(v.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Replace(a.Bytes, ac.RawSubjectPublicKeyInfo, vc.RawSubjectPublicKeyInfo, 1)
	if bytes.Equal(out, a.Bytes) {
		t.Fatal("splice failed")
	}
	return pemCSR(out)
}
