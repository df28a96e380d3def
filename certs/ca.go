package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Defaults mirror istiod's: 24h workload certs, 90 days at most
// (MAX_WORKLOAD_CERT_TTL), a 10-year self-signed root (CITADEL_SELF_SIGNED_CA_CERT_TTL).
const (
	DefaultCertTTL     = 24 * time.Hour
	DefaultMaxCertTTL  = 90 * 24 * time.Hour
	DefaultRootTTL     = 10 * 365 * 24 * time.Hour
	DefaultMaxCSRBytes = 16 << 10

	// backdate absorbs clock skew between mizzen and the proxies that check
	// NotBefore, so a fresh certificate is not "not yet valid" somewhere.
	backdate = 5 * time.Minute
)

// Clock is injected so tests can drive certificate validity and rotation.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configures a CA. Zero values take the defaults above.
type Options struct {
	TrustDomain string        // default cluster.local; Sign refuses other trust domains
	DefaultTTL  time.Duration // used when a caller asks for ttl 0
	MaxTTL      time.Duration // longer requests are refused, not silently shortened
	RootTTL     time.Duration // lifetime of a newly created self-signed root
	MaxCSRBytes int           // CSRs above this are refused before parsing
	Clock       Clock
}

func (o Options) withDefaults() Options {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultCertTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxCertTTL
	}
	if o.DefaultTTL > o.MaxTTL {
		o.DefaultTTL = o.MaxTTL
	}
	if o.RootTTL <= 0 {
		o.RootTTL = DefaultRootTTL
	}
	if o.MaxCSRBytes <= 0 {
		o.MaxCSRBytes = DefaultMaxCSRBytes
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}

// CA signs workload and serving certificates. It is immutable once built and
// safe for concurrent use.
type CA struct {
	opts     Options
	cert     *x509.Certificate
	key      crypto.Signer
	chainPEM []byte // signing cert + intermediates, without the root: appended to every leaf
	root     *x509.Certificate
	rootPEM  []byte
	plugIn   bool
}

// LoadOrCreate returns the CA kept in store, creating and storing a
// self-signed root on first use. Stored material is validated, never replaced:
// a broken root is an operator problem, and silently minting a new one would
// break trust with every workload holding the old one.
func LoadOrCreate(ctx context.Context, store Store, opts Options) (*CA, error) {
	ca, err := Load(ctx, store, opts)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return ca, err
	}
	opts = opts.withDefaults()
	m, err := newSelfSignedRoot(opts)
	if err != nil {
		return nil, err
	}
	if err := store.Put(ctx, m); err != nil {
		if !errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("store new root CA: %w", err)
		}
		// Another replica created the root first; use theirs.
		return Load(ctx, store, opts)
	}
	return New(m, opts)
}

// Load returns the CA kept in store; the error wraps ErrNotFound when the store is empty.
func Load(ctx context.Context, store Store, opts Options) (*CA, error) {
	m, err := store.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("load CA material: %w", err)
	}
	return New(m, opts)
}

// New builds a CA from material after checking it can actually issue
// certificates that verify: key matches cert, cert is a CA, everything is
// within its validity, and a plug-in chain leads to its root.
func New(m *Material, opts Options) (*CA, error) {
	opts = opts.withDefaults()
	if err := validTrustDomain(opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("CA options: %w", err)
	}
	now := opts.Clock.Now()
	certs, err := parseCerts(m.CACert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	cert := certs[0]
	key, err := parsePrivateKey(m.CAKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	if err := checkSigningCert(cert, key, now); err != nil {
		return nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	ca := &CA{opts: opts, cert: cert, key: key}
	if !m.PlugIn() {
		if err := cert.CheckSignatureFrom(cert); err != nil {
			return nil, fmt.Errorf("%s: no %s given, so this must be a self-signed root, but it is not: %w", CACertFile, RootCertFile, err)
		}
		ca.root, ca.rootPEM = cert, encodeCert(cert)
		ca.chainPEM = nil // the root itself is not sent with leaves; peers have it
		return ca, nil
	}
	if err := ca.loadPlugIn(m, now); err != nil {
		return nil, err
	}
	return ca, nil
}

func (ca *CA) loadPlugIn(m *Material, now time.Time) error {
	roots, err := parseCerts(m.RootCert)
	if err != nil {
		return fmt.Errorf("%s: %w", RootCertFile, err)
	}
	root := roots[0]
	if !root.IsCA {
		return fmt.Errorf("%s: certificate %q is not a CA", RootCertFile, root.Subject)
	}
	var chain []*x509.Certificate
	if len(bytes.TrimSpace(m.CertChain)) > 0 {
		if chain, err = parseCerts(m.CertChain); err != nil {
			return fmt.Errorf("%s: %w", CertChainFile, err)
		}
		if !chain[0].Equal(ca.cert) {
			return fmt.Errorf("%s must start with the certificate in %s (got %q, want %q)", CertChainFile, CACertFile, chain[0].Subject, ca.cert.Subject)
		}
	}
	inter := x509.NewCertPool()
	var served []*x509.Certificate
	served = append(served, ca.cert)
	for _, c := range chain[min(1, len(chain)):] {
		if c.Equal(root) {
			continue // peers already trust the root; sending it is noise
		}
		inter.AddCert(c)
		served = append(served, c)
	}
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	if _, err := ca.cert.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("plug-in CA: %s does not chain to %s via %s: %w", CACertFile, RootCertFile, CertChainFile, err)
	}
	ca.plugIn = true
	ca.root = root
	ca.rootPEM = bytes.TrimSpace(m.RootCert)
	ca.rootPEM = append(ca.rootPEM, '\n')
	for _, c := range served {
		ca.chainPEM = append(ca.chainPEM, encodeCert(c)...)
	}
	return nil
}

func checkSigningCert(cert *x509.Certificate, key crypto.Signer, now time.Time) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("private key in %s does not match certificate %q", CAKeyFile, cert.Subject)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("certificate %q is not a CA (basic constraints CA:FALSE or missing)", cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("certificate %q lacks the certSign key usage", cert.Subject)
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("certificate %q expired at %s", cert.Subject, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Add(backdate).Before(cert.NotBefore) {
		return fmt.Errorf("certificate %q is not valid until %s", cert.Subject, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func newSelfSignedRoot(opts Options) (*Material, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := opts.Clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Istio names its self-signed root by trust domain only.
		Subject:               pkix.Name{Organization: []string{opts.TrustDomain}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(opts.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Material{CACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), CAKey: keyPEM}, nil
}

// RootCertPEM is the mesh root, as published in ConfigMap istio-ca-root-cert
// (key root-cert.pem) and returned last by the CSR API.
func (ca *CA) RootCertPEM() []byte { return bytes.Clone(ca.rootPEM) }

// TrustBundlePEM is the content of the SDS ROOTCA secret. It equals the root
// today; it is separate so root rotation can later serve old and new roots
// together without touching callers.
func (ca *CA) TrustBundlePEM() []byte { return bytes.Clone(ca.rootPEM) }

// TrustDomain is the only trust domain this CA signs for.
func (ca *CA) TrustDomain() string { return ca.opts.TrustDomain }

// PlugIn reports whether the CA is an intermediate under an external root.
func (ca *CA) PlugIn() bool { return ca.plugIn }

// SigningCert is the certificate leaves are signed with (the root when self-signed).
func (ca *CA) SigningCert() *x509.Certificate { return ca.cert }

func randomSerial() (*big.Int, error) {
	// Unpredictable serials (CA/B BR §7.1) keep chosen-prefix collision
	// attacks off the table even for a CA signing attacker-chosen keys.
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 { // RFC 5280 requires a positive serial
			return n, nil
		}
	}
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE found")
	}
	return out, nil
}

func parsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q for a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	if k, ok := signer.(*rsa.PrivateKey); ok && k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits is too weak, want at least 2048", k.N.BitLen())
	}
	return signer, nil
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func encodeKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
