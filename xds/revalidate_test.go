package xds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/pkg/authn"
	"github.com/mizzenmesh/mizzen/pkg/model"
)

// tokenState is what the fake apiserver says about a token.
type tokenState int

const (
	tokenValid    tokenState = iota
	tokenRevoked             // refused: service account or pod deleted
	tokenNoAnswer            // the apiserver cannot answer
)

// fakeTokens authenticates "Bearer <token>" as ns/<token> and re-checks it,
// as authn.TokenReviewer does against an apiserver.
type fakeTokens struct {
	mu       sync.Mutex
	state    map[string]tokenState
	rechecks map[string]int
}

func newFakeTokens() *fakeTokens {
	return &fakeTokens{state: map[string]tokenState{}, rechecks: map[string]int{}}
}

func (f *fakeTokens) set(tok string, s tokenState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[tok] = s
}

func (f *fakeTokens) recheckCount(tok string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rechecks[tok]
}

func (f *fakeTokens) check(tok string) (authn.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.state[tok] {
	case tokenRevoked:
		return authn.Identity{}, &authn.Failure{Reason: "invalid_token", Err: errors.New("service account deleted")}
	case tokenNoAnswer:
		return authn.Identity{}, &authn.Failure{Reason: authn.ReasonReviewFailed, Err: errors.New("apiserver unavailable")}
	}
	return authn.Identity{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: tok, Via: "token"}, nil
}

func (f *fakeTokens) Authenticate(ctx context.Context) (authn.Identity, error) {
	tok, err := authn.BearerToken(ctx)
	if err != nil {
		return authn.Identity{}, err
	}
	return f.check(tok)
}

func (f *fakeTokens) Rechecker(callCtx context.Context, id authn.Identity) authn.Recheck {
	tok, _ := authn.BearerToken(callCtx)
	return func(context.Context, time.Duration) error {
		f.mu.Lock()
		f.rechecks[tok]++
		f.mu.Unlock()
		_, err := f.check(tok)
		return err
	}
}

// revalidationServer is an xDS server behind the authn interceptors, as on
// mizzen's secure port, with a CA issuing SDS certificates.
func revalidationServer(t *testing.T, tokens *fakeTokens, interval, certTTL time.Duration) (addr string, revocations func(reason string) float64) {
	t.Helper()
	ca, err := certs.LoadOrCreate(context.Background(), certs.FileStore{Dir: t.TempDir()}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(reg),
		CA: func() *certs.CA { return ca }, CertTTL: certTTL, IdentityReviewInterval: interval})
	unary, stream := authn.Interceptors(tokens, nil)
	g := grpc.NewServer(append(GRPCServerOptions(), grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Register(ctx, g)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	s.Update(model.Build(&model.Inputs{}, 1))
	deadline := time.Now().Add(10 * time.Second)
	for !s.Ready() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return lis.Addr().String(), func(reason string) float64 {
		m := &dto.Metric{}
		if err := s.guards.revocations.WithLabelValues(reason).Write(m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
}

// secretStream is a SotW or delta ADS stream subscribed to the SDS secrets;
// it records when each certificate arrives and how the stream ends.
type secretStream struct {
	mu    sync.Mutex
	certs []time.Time
	ended chan error
}

func (s *secretStream) received() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.certs...)
}

func (s *secretStream) got() {
	s.mu.Lock()
	s.certs = append(s.certs, time.Now())
	s.mu.Unlock()
}

func openSecrets(t *testing.T, addr, token, sa string, delta bool) *secretStream {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token))
	t.Cleanup(func() { cancel(); cc.Close() })
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "ns", "SERVICE_ACCOUNT": sa})
	node := &core.Node{Id: "sidecar~10.0.0.1~" + sa + "-pod.ns~ns.svc.cluster.local", Metadata: md}
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
	s := &secretStream{ended: make(chan error, 1)}
	if delta {
		st, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType,
			ResourceNamesSubscribe: []string{SecretDefault, SecretRootCA}}); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				resp, err := st.Recv()
				if err != nil {
					s.ended <- err
					return
				}
				for _, r := range resp.GetResources() {
					if r.GetName() == SecretDefault {
						s.got()
					}
				}
				_ = st.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
			}
		}()
		return s
	}
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{SecretDefault, SecretRootCA}}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				s.ended <- err
				return
			}
			s.got()
			_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: req.ResourceNames,
				VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
		}
	}()
	return s
}

func waitCert(t *testing.T, s *secretStream, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.received()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d certificates, want %d", len(s.received()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantEnded(t *testing.T, s *secretStream, within time.Duration) {
	t.Helper()
	select {
	case err := <-s.ended:
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("stream ended with %v, want Unauthenticated", err)
		}
	case <-time.After(within):
		t.Fatalf("stream still open %s after its identity was revoked", within)
	}
}

// TestRevokedStreamsEnd: the periodic re-check ends a SotW and a delta
// stream whose identity was revoked, with Unauthenticated, counted; a stream
// whose re-check gets no answer is kept.
func TestRevokedStreamsEnd(t *testing.T) {
	tokens := newFakeTokens()
	addr, revocations := revalidationServer(t, tokens, 300*time.Millisecond, time.Hour)
	sotw := openSecrets(t, addr, "sa-sotw", "sa-sotw", false)
	delta := openSecrets(t, addr, "sa-delta", "sa-delta", true)
	flaky := openSecrets(t, addr, "sa-flaky", "sa-flaky", false)
	for _, s := range []*secretStream{sotw, delta, flaky} {
		waitCert(t, s, 1)
	}
	revokedAt := time.Now()
	tokens.set("sa-sotw", tokenRevoked)
	tokens.set("sa-delta", tokenRevoked)
	tokens.set("sa-flaky", tokenNoAnswer)
	wantEnded(t, sotw, 2*time.Second)
	wantEnded(t, delta, 2*time.Second)
	t.Logf("revoked streams ended %s after revocation (interval 300ms)", time.Since(revokedAt).Round(time.Millisecond))
	if got := revocations("invalid_token"); got != 2 {
		t.Fatalf("mizzen_xds_identity_revocations_total{reason=invalid_token} = %v, want 2", got)
	}
	// The stream without an answer is re-checked again and again, but kept.
	n := tokens.recheckCount("sa-flaky")
	time.Sleep(time.Second)
	select {
	case err := <-flaky.ended:
		t.Fatalf("a stream whose re-check got no answer was ended: %v", err)
	default:
	}
	if tokens.recheckCount("sa-flaky") <= n {
		t.Fatalf("the unanswered re-check was not retried")
	}
}

// TestCertificateOnlyAfterRecheck: with periodic re-checks far apart, the
// re-check before a certificate rotation finds the revoked identity: no new
// certificate, the stream ends.
func TestCertificateOnlyAfterRecheck(t *testing.T) {
	tokens := newFakeTokens()
	addr, _ := revalidationServer(t, tokens, time.Hour, 3*time.Second)
	live := openSecrets(t, addr, "sa-live", "sa-live", false)
	doomed := openSecrets(t, addr, "sa-doomed", "sa-doomed", true)
	waitCert(t, live, 1)
	waitCert(t, doomed, 1)
	// The first certificate rode on the authentication of the stream.
	if n := tokens.recheckCount("sa-doomed"); n > 1 {
		t.Fatalf("%d re-checks before the first certificate", n)
	}
	tokens.set("sa-doomed", tokenRevoked)
	revokedAt := time.Now()
	wantEnded(t, doomed, 5*time.Second)
	for _, at := range doomed.received() {
		if at.After(revokedAt) {
			t.Fatalf("a certificate reached the stream %s after its identity was revoked", at.Sub(revokedAt))
		}
	}
	// The other proxy keeps rotating, each rotation re-checked.
	waitCert(t, live, 2)
	if n := tokens.recheckCount("sa-live"); n < 1 {
		t.Fatalf("certificate rotated without a re-check")
	}
}

// TestSecureServerMaxConnectionAge: a connection to the secure port is closed
// after its maximum age (±10%) and grace, even with a stream open on it, so
// the proxy reconnects and proves its identity again.
func TestSecureServerMaxConnectionAge(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	g := grpc.NewServer(SecureGRPCServerOptions(300*time.Millisecond, 300*time.Millisecond)...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Register(ctx, g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() { cancel(); g.Stop() })
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ended := make(chan error, 1)
	go func() { _, err := st.Recv(); ended <- err }()
	select {
	case err := <-ended:
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Fatalf("stream ended after %s, before the connection's maximum age: %v", took, err)
		}
		t.Logf("stream ended %s after it opened: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5 s after a maximum connection age of 300 ms + 300 ms grace")
	}
}
