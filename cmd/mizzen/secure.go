package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/pkg/authn"
	"github.com/mizzenmesh/mizzen/pkg/caserver"
	"github.com/mizzenmesh/mizzen/xds"
)

// defaultServingNames are the names proxies dial mizzen by, as they dial istiod.
var defaultServingNames = []string{
	"istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local", "istiod.istio-system", "istiod",
	"localhost", "127.0.0.1", "::1",
}

// caHolder is the mesh CA once loaded; nil before.
type caHolder struct {
	p     atomic.Pointer[certs.CA]
	once  sync.Once
	ready chan struct{}
}

func newCAHolder() *caHolder { return &caHolder{ready: make(chan struct{})} }

func (h *caHolder) get() *certs.CA { return h.p.Load() }

func (h *caHolder) set(ca *certs.CA) {
	h.p.Store(ca)
	h.once.Do(func() { close(h.ready) })
}

// wait returns the CA once loaded, or nil when ctx ends first.
func (h *caHolder) wait(ctx context.Context) *certs.CA {
	select {
	case <-h.ready:
		return h.get()
	case <-ctx.Done():
		return nil
	}
}

// loadFileCA loads or creates the cluster-less mode's CA in dir.
func loadFileCA(ctx context.Context, dir string, opts certs.Options) (*certs.CA, error) {
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("--ca-dir not set and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".mizzen", "ca")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--ca-dir %s: %w", dir, err)
	}
	ca, err := certs.LoadOrCreate(ctx, certs.FileStore{Dir: dir}, opts)
	if err != nil {
		return nil, fmt.Errorf("CA in %s: %w", dir, err)
	}
	return ca, nil
}

// servingCerts hands out mizzen's own certificate for 15012, issued by the
// mesh CA (so proxies verify it with the root they already trust) and renewed
// at half its life.
type servingCerts struct {
	ca    *caHolder
	names []string
	ttl   time.Duration

	mu       sync.Mutex
	cert     *tls.Certificate
	renewAt  time.Time
	issuedBy *certs.CA
}

func (s *servingCerts) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	ca := s.ca.get()
	if ca == nil {
		return nil, fmt.Errorf("the CA is not ready yet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.cert != nil && s.issuedBy == ca && now.Before(s.renewAt) {
		return s.cert, nil
	}
	c, err := ca.ServingTLSCertificate(s.names, s.ttl)
	if err != nil {
		return nil, err
	}
	leaf := c.Leaf
	if leaf == nil {
		return nil, fmt.Errorf("serving certificate: no leaf")
	}
	s.cert, s.issuedBy = &c, ca
	s.renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	return s.cert, nil
}

// maxConnectionAgeGrace is istiod's MaxServerConnectionAgeGrace: how long a
// connection past its maximum age may finish its calls.
const maxConnectionAgeGrace = 10 * time.Second

// secureServer is port 15012: ADS and Istio's CSR API over TLS. Every call
// must prove a workload identity (a service-account token checked with
// TokenReview), except in cluster-less development with
// --insecure-dev-identity, where ADS streams may come without one.
// Connections live at most maxAge (0: no limit), as istiod's do.
func newSecureServer(log *slog.Logger, reg prometheus.Registerer, ca *caHolder, names []string, maxAge time.Duration,
	auth authn.Authenticator, xdsServer *xds.Server, ctx context.Context) *grpc.Server {
	csrMetrics := caserver.NewMetrics(reg)
	sc := &servingCerts{ca: ca, names: names, ttl: 24 * time.Hour}
	creds := limitHandshakes(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: sc.get}), maxHandshakes)
	opts := append(xds.SecureGRPCServerOptions(maxAge, maxConnectionAgeGrace), grpc.Creds(creds))
	if auth != nil {
		unary, stream := authn.Interceptors(auth, func(method string, err error) {
			csrMetrics.AuthFailure(authn.Reason(err))
			log.Warn("refused unauthenticated call", "method", method, "reason", authn.Reason(err), "err", err)
		})
		opts = append(opts, grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	}
	g := grpc.NewServer(opts...)
	xdsServer.Register(ctx, g)
	(&caserver.Server{CA: ca.get, Log: log, Metrics: csrMetrics}).Register(g)
	return g
}

// maxHandshakes bounds the TLS handshakes the secure port runs at once.
const maxHandshakes = 16

// handshakeWait is how long a new connection may wait for a handshake slot.
const handshakeWait = 30 * time.Second

// limitHandshakes runs at most n server handshakes of creds at once. A burst
// of new connections (a fleet reconnecting, or a flood from anyone who can
// reach the port: the handshake comes before any credential) then costs n
// handshakes' buffers at a time, not one per connection, and the CPU goes to
// finishing handshakes rather than interleaving all of them.
func limitHandshakes(creds credentials.TransportCredentials, n int) credentials.TransportCredentials {
	return &limitedHandshakes{TransportCredentials: creds, slots: make(chan struct{}, n)}
}

type limitedHandshakes struct {
	credentials.TransportCredentials
	slots chan struct{}
}

func (l *limitedHandshakes) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	t := time.NewTimer(handshakeWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
	case <-t.C:
		return nil, nil, fmt.Errorf("no TLS handshake slot within %s (%d handshakes running)", handshakeWait, cap(l.slots))
	}
	defer func() { <-l.slots }()
	return l.TransportCredentials.ServerHandshake(c)
}

func (l *limitedHandshakes) Clone() credentials.TransportCredentials {
	return &limitedHandshakes{TransportCredentials: l.TransportCredentials.Clone(), slots: l.slots}
}

// tokenReviewer authenticates service-account tokens against the cluster.
// Its Kubernetes client is its own, with its own QPS and burst: anyone who
// can reach the secure port can make mizzen send TokenReviews, and they must
// never wait behind (or hold up) the informers' requests. An accepted token
// is believed for at most 10 s and at most one review interval.
func tokenReviewer(cfg *rest.Config, o serveOptions, reg prometheus.Registerer) (authn.Authenticator, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.tokenReviewQPS, o.tokenReviewBurst
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("TokenReview client: %w", err)
	}
	return authn.NewTokenReviewer(client, authn.ReviewOptions{
		TrustDomain: o.trustDomain,
		SuccessTTL:  min(10*time.Second, o.identityReviewInterval),
		Metrics:     authn.NewMetrics(reg),
	}), nil
}

// gateSecureListener lets the token reviewer hold back and close the
// connections of addresses over their budget of unauthenticated calls.
func gateSecureListener(auth authn.Authenticator, l net.Listener) net.Listener {
	if g, ok := auth.(interface {
		Listener(net.Listener) net.Listener
	}); ok {
		return g.Listener(l)
	}
	return l
}

// listenSecure opens the secure port, or returns nil when it is disabled.
func listenSecure(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("secure xDS listener: %w", err)
	}
	return l, nil
}
