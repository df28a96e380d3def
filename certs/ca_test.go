package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateKeepsRoot(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ca")
	store := FileStore{Dir: dir}

	if _, err := Load(ctx, store, Options{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load on empty store: got %v, want ErrNotFound", err)
	}
	first, err := LoadOrCreate(ctx, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreate(ctx, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.RootCertPEM(), second.RootCertPEM()) {
		t.Fatal("second LoadOrCreate minted a new root")
	}
	if first.PlugIn() || !first.SigningCert().IsCA {
		t.Fatal("self-signed CA misreported")
	}
	if got := first.SigningCert().Subject.Organization; len(got) != 1 || got[0] != "cluster.local" {
		t.Errorf("root subject O = %v, want trust domain", got)
	}
	if !bytes.Equal(first.TrustBundlePEM(), first.RootCertPEM()) {
		t.Error("ROOTCA bundle differs from the root")
	}
	// A leaf from the reloaded CA verifies against the first CA's root.
	chain, _, err := second.GenerateLeaf(SpiffeID("cluster.local", "default", "web"), 0)
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, chain, first.RootCertPEM())

	// Istio's istio-ca-secret layout: only the CA cert and key.
	for name, perm := range map[string]os.FileMode{CAKeyFile: 0o600, CACertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), perm)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, name := range []string{RootCertFile, CertChainFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("self-signed store wrote %s", name)
		}
	}
	if err := store.Put(ctx, &Material{CACert: []byte("x"), CAKey: []byte("y")}); !errors.Is(err, ErrExists) {
		t.Errorf("Put over existing material: got %v, want ErrExists", err)
	}
}

// racingStore simulates another replica creating the root between our Get and Put.
type racingStore struct {
	FileStore
	other *Material
}

func (s *racingStore) Put(ctx context.Context, m *Material) error {
	if s.other != nil {
		if err := s.FileStore.Put(ctx, s.other); err != nil {
			return err
		}
		s.other = nil
	}
	return s.FileStore.Put(ctx, m)
}

func TestLoadOrCreateLosesRaceGracefully(t *testing.T) {
	ctx := context.Background()
	winner, err := newSelfSignedRoot(Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadOrCreate(ctx, &racingStore{FileStore{t.TempDir()}, winner}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca.RootCertPEM(), winner.CACert) {
		t.Fatal("did not adopt the root stored by the other replica")
	}
}

func TestPlugInChainVerifies(t *testing.T) {
	now := time.Now()
	m, root := plugInMaterial(t, now)
	dir := t.TempDir()
	for name, data := range m.Files() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := LoadOrCreate(context.Background(), FileStore{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.PlugIn() {
		t.Fatal("plug-in CA not detected")
	}
	if !bytes.Equal(ca.RootCertPEM(), encodeCert(root)) {
		t.Fatal("RootCertPEM is not root-cert.pem")
	}
	chainPEM, err := ca.Sign(csrPEM(t, mustKey(t)), SpiffeID("cluster.local", "shop", "cart"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := parseCerts(chainPEM)
	if len(chain) != 2 {
		t.Fatalf("chain has %d certs, want leaf + intermediate (root left out)", len(chain))
	}
	verifyLeaf(t, chainPEM, ca.RootCertPEM())
	// The intermediate alone must not be enough: the chain leads to the root.
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: poolOf(chain[1:]...)}); err != nil {
		t.Fatalf("leaf not signed by the intermediate: %v", err)
	}
}

func TestIncompletePlugInIsNotReplaced(t *testing.T) {
	m, _ := plugInMaterial(t, time.Now())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, RootCertFile), m.RootCert, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreate(context.Background(), FileStore{dir}, Options{})
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("got %v, want an incomplete plug-in error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a self-signed root was written next to the plug-in files")
	}
}

func TestLoadRejectsBadMaterial(t *testing.T) {
	now := time.Now()
	good, _ := plugInMaterial(t, now)
	other, _ := plugInMaterial(t, now)
	otherKey := mustKey(t)
	leafTmpl := caTemplate("not a ca", now, time.Hour)
	leafTmpl.IsCA = false
	notCA := mustCert(t, leafTmpl, leafTmpl, otherKey.Public(), otherKey)
	expKey := mustKey(t)
	expTmpl := caTemplate("expired", now.Add(-48*time.Hour), time.Hour)
	expTmpl.NotAfter = now.Add(-time.Hour)
	expired := mustCert(t, expTmpl, expTmpl, expKey.Public(), expKey)

	cases := []struct {
		name string
		m    Material
		want string
	}{
		{"key mismatch", Material{CACert: good.CACert, CAKey: other.CAKey, RootCert: good.RootCert, CertChain: good.CertChain}, "does not match"},
		{"not a CA", Material{CACert: encodeCert(notCA), CAKey: pemKey(t, otherKey)}, "is not a CA"},
		{"expired", Material{CACert: encodeCert(expired), CAKey: pemKey(t, expKey)}, "expired"},
		{"wrong root", Material{CACert: good.CACert, CAKey: good.CAKey, RootCert: other.RootCert, CertChain: good.CACert}, "does not chain"},
		{"chain not starting at ca-cert", Material{CACert: good.CACert, CAKey: good.CAKey, RootCert: good.RootCert, CertChain: other.CertChain}, "must start with"},
		{"intermediate without root", Material{CACert: good.CACert, CAKey: good.CAKey}, "self-signed root"},
		{"garbage cert", Material{CACert: []byte("hello"), CAKey: good.CAKey}, "no PEM CERTIFICATE"},
		{"garbage key", Material{CACert: good.CACert, CAKey: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}, "parse PRIVATE KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(&tc.m, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestServingCert(t *testing.T) {
	ca := newTestCA(t, Options{})
	names := []string{"istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local"}
	tc, err := ca.ServingTLSCertificate(names, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(tc.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: poolOf(ca.SigningCert()), DNSName: "istiod.istio-system.svc",
	}); err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 0 || leaf.IsCA {
		t.Error("serving cert carries a SPIFFE URI or CA flag")
	}
	if _, _, err := ca.ServingCert(nil, 0); err == nil {
		t.Error("serving cert without names accepted")
	}
}

func newTestCA(t *testing.T, opts Options) *CA {
	t.Helper()
	ca, err := LoadOrCreate(context.Background(), FileStore{t.TempDir()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func verifyLeaf(t *testing.T, chainPEM, rootPEM []byte) *x509.Certificate {
	t.Helper()
	chain, err := parseCerts(chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := parseCerts(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: poolOf(roots...), Intermediates: poolOf(chain[1:]...),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("leaf does not verify to root: %v", err)
	}
	return chain[0]
}
