package xds

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/mizzenmesh/mizzen/certs"
)

// Istio's SDS resource names: the workload's own certificate and key, and the
// mesh root that validates peers. Translators reference them by these names.
const (
	SecretDefault = "default"
	SecretRootCA  = "ROOTCA"
)

// CASource returns the mesh CA, or nil while it is still loading.
type CASource func() *certs.CA

// secretState is the certificate mizzen issued to one proxy. The key is
// generated here: an Envoy talking straight to mizzen has no agent to make
// one, and its stream is already authenticated, so the key travels only over
// that TLS stream.
type secretState struct {
	chainPEM []byte
	rotateAt time.Time
	notAfter time.Time
	rootPEM  []byte
	leaf, ca *part
}

// secrets issues and rotates the `default` and `ROOTCA` secrets of proxies
// whose stream proved an identity.
type secrets struct {
	ca  CASource
	ttl time.Duration

	mu       sync.Mutex
	rootPEM  []byte
	rootPart *part
}

// rootPart is the ROOTCA secret, shared by every proxy of one root.
func (s *secrets) root(ca *certs.CA) (*part, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pem := ca.TrustBundlePEM()
	if s.rootPart != nil && string(pem) == string(s.rootPEM) {
		return s.rootPart, s.rootPEM, nil
	}
	p, err := newPart([]*tlsv3.Secret{{
		Name: SecretRootCA,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: pem}},
		}},
	}}, secretName)
	if err != nil {
		return nil, nil, err
	}
	s.rootPart, s.rootPEM = p, pem
	return p, pem, nil
}

func secretName(s *tlsv3.Secret) string { return s.GetName() }

// issue makes a fresh key and certificate for identity. The rotation time is
// Istio's: at half the lifetime, moved earlier by up to a tenth of it, so a
// fleet that connected together does not renew together.
func (s *secrets) issue(identity string, now time.Time) (*secretState, error) {
	ca := s.ca()
	if ca == nil {
		return nil, errCANotReady
	}
	chain, key, err := ca.GenerateLeaf(identity, s.ttl)
	if err != nil {
		return nil, err
	}
	leaf, err := newPart([]*tlsv3.Secret{{
		Name: SecretDefault,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: chain}},
			PrivateKey:       &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: key}},
		}},
	}}, secretName)
	if err != nil {
		return nil, err
	}
	root, rootPEM, err := s.root(ca)
	if err != nil {
		return nil, err
	}
	cert, err := certs.ParseFirstCert(chain)
	if err != nil {
		return nil, err
	}
	// The lifetime counts from now: NotBefore is backdated for clock skew,
	// and counting from it would renew a short-lived certificate at once.
	life := cert.NotAfter.Sub(now)
	jitter := time.Duration(rand.Int64N(int64(life/10) + 1))
	return &secretState{
		chainPEM: chain, leaf: leaf, ca: root, rootPEM: rootPEM,
		notAfter: cert.NotAfter,
		rotateAt: cert.NotAfter.Add(-time.Duration(float64(life)*certs.DefaultGraceRatio) - jitter),
	}, nil
}

type caNotReady struct{}

func (caNotReady) Error() string { return "the CA is not ready yet" }

var errCANotReady error = caNotReady{}

// runRotation renews certificates before they expire, issues them to proxies
// that connected while the CA was loading, and follows a root change. New
// secrets go out on the open stream: Envoy swaps them in without closing
// connections.
func (s *Server) runRotation(ctx context.Context) {
	if s.secrets == nil {
		return
	}
	tick := min(max(s.secrets.ttl/20, time.Second), 10*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var rootPEM []byte
		if ca := s.secrets.ca(); ca != nil {
			rootPEM = ca.TrustBundlePEM()
		}
		for _, cn := range s.cache.snapshotConns() {
			cn.mu.Lock()
			need := cn.identity != "" && !cn.proxy.AgentSDS() && (cn.secret == nil || !now.Before(cn.secret.rotateAt) ||
				(rootPEM != nil && string(rootPEM) != string(cn.secret.rootPEM)))
			id := cn.identity
			cn.mu.Unlock()
			if need {
				s.renewSecret(cn, id, now)
			}
		}
	}
}

// renewSecret issues a new certificate for cn and pushes it, once the
// identity is confirmed (revalidate.go).
func (s *Server) renewSecret(cn *conn, identity string, now time.Time) {
	if !s.confirmIdentity(cn.id) {
		return
	}
	st, err := s.secrets.issue(identity, now)
	if err != nil {
		if err != errCANotReady {
			s.log.Error("issuing workload certificate failed; will retry", "proxy", cn.id, "identity", identity, "err", err)
		}
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	rotated := cn.secret != nil
	cn.secret = st
	cn.types[sdsType].set = cn.sdsSet()
	s.cache.respondIfNeeded(cn, sdsType)
	if rotated {
		s.metrics.certRotations.Inc()
	}
	s.log.Debug("workload certificate issued", "proxy", cn.id, "identity", identity, "not_after", st.notAfter, "rotated", rotated)
}
