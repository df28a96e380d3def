package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// maxRSABits bounds the work a requester can make us do verifying its CSR.
const maxRSABits = 8192

// Sign issues a workload certificate for identity with the public key of
// csrPEM. identity must come from the caller's authenticated credential: the
// CSR's subject, SANs and extensions are ignored, only its key is used (after
// checking the CSR is signed by that key). ttl 0 means the default TTL.
//
// The result is the leaf followed by any intermediates, without the root
// (peers get the root from ROOTCA / istio-ca-root-cert; the CSR API appends
// RootCertPEM itself, as istiod does).
func (ca *CA) Sign(csrPEM []byte, identity string, ttl time.Duration) ([]byte, error) {
	csr, err := ca.parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", identity, err)
	}
	return ca.issueWorkload(csr.PublicKey, identity, ttl)
}

// GenerateLeaf creates an EC P-256 key and a workload certificate for it, for
// proxies whose key mizzen generates (SDS to Envoys without istio-agent).
// It returns the chain as Sign does and the PKCS#8 key.
func (ca *CA) GenerateLeaf(identity string, ttl time.Duration) (certChainPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", identity, err)
	}
	chain, err := ca.issueWorkload(key.Public(), identity, ttl)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return chain, keyPEM, nil
}

// ServingCert issues mizzen's own TLS certificate (names may be IP addresses) (istiod.istio-system.svc for
// xDS/CSR on 15012 and the webhooks on 15017), so proxies and the apiserver
// can verify it with the mesh root they already have.
func (ca *CA) ServingCert(dnsNames []string, ttl time.Duration) (certChainPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 {
		return nil, nil, errors.New("serving certificate: no DNS names")
	}
	for _, n := range dnsNames {
		if n == "" {
			return nil, nil, errors.New("serving certificate: empty DNS name")
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("serving certificate: generate key: %w", err)
	}
	tmpl, err := ca.leafTemplate(ttl)
	if err != nil {
		return nil, nil, fmt.Errorf("serving certificate: %w", err)
	}
	for _, n := range dnsNames {
		// Clients that dial an address (a bootstrap with 127.0.0.1:15012)
		// verify it as an IP SAN.
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	chain, err := ca.issue(tmpl, key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("serving certificate %v: %w", dnsNames, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return chain, keyPEM, nil
}

// ServingTLSCertificate is ServingCert ready for a tls.Config.
func (ca *CA) ServingTLSCertificate(dnsNames []string, ttl time.Duration) (tls.Certificate, error) {
	chain, key, err := ca.ServingCert(dnsNames, ttl)
	if err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate: %w", err)
	}
	return c, nil
}

func (ca *CA) issueWorkload(pub crypto.PublicKey, identity string, ttl time.Duration) ([]byte, error) {
	td, _, _, err := ParseSpiffeID(identity)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if td != ca.opts.TrustDomain {
		return nil, fmt.Errorf("sign %s: trust domain %q is not this CA's (%q)", identity, td, ca.opts.TrustDomain)
	}
	uri, err := url.Parse(identity)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", identity, err)
	}
	tmpl, err := ca.leafTemplate(ttl)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", identity, err)
	}
	// Exactly one SAN and an empty subject, like istiod: authorization keys
	// on the URI SAN, so nothing else may be there to confuse a verifier.
	tmpl.URIs = []*url.URL{uri}
	tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	chain, err := ca.issue(tmpl, pub)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", identity, err)
	}
	return chain, nil
}

func (ca *CA) leafTemplate(ttl time.Duration) (*x509.Certificate, error) {
	switch {
	case ttl < 0:
		return nil, fmt.Errorf("negative TTL %s", ttl)
	case ttl == 0:
		ttl = ca.opts.DefaultTTL
	case ttl > ca.opts.MaxTTL:
		return nil, fmt.Errorf("requested TTL %s exceeds the maximum %s", ttl, ca.opts.MaxTTL)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := ca.opts.Clock.Now()
	// Backdating is capped at a tenth of the TTL: rotation is computed from
	// NotBefore, and a full skew allowance on a minutes-long test TTL would make
	// a fresh certificate look half-used already.
	notBefore, notAfter := now.Add(-min(backdate, ttl/10)), now.Add(ttl)
	// A leaf cannot outlive (or predate) its issuer and still verify, so clamp
	// rather than hand out a certificate that fails in the peer.
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("CA certificate %q expired at %s", ca.cert.Subject, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}, nil
}

func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, ca.chainPEM...), nil
}

// parseCSR refuses anything that is not one well-formed PKCS#10 request with
// a supported key, self-signed by that key. Checks run cheapest first so a
// hostile requester cannot make us parse or verify something large.
func (ca *CA) parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	if len(csrPEM) > ca.opts.MaxCSRBytes {
		return nil, fmt.Errorf("CSR of %d bytes exceeds the %d-byte limit", len(csrPEM), ca.opts.MaxCSRBytes)
	}
	block, rest := pem.Decode(csrPEM)
	if block == nil {
		return nil, errors.New("CSR is not PEM encoded")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("CSR PEM block is %q, want CERTIFICATE REQUEST", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("CSR has trailing data after the PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("CSR key: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature does not verify with its own key: %w", err)
	}
	return csr, nil
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fmt.Errorf("unsupported EC curve %s, want P-256 or P-384", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > maxRSABits {
			return fmt.Errorf("RSA key of %d bits, want 2048 to %d", bits, maxRSABits)
		}
		return nil
	case nil:
		return errors.New("missing or unrecognised public key algorithm")
	default:
		return fmt.Errorf("unsupported key type %T, want EC P-256/P-384 or RSA", pub)
	}
}
