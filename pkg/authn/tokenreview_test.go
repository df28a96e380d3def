package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"net/http"
	"net/http/httptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPI answers TokenReviews over HTTP like the apiserver: tokens in valid
// are authenticated as their service account (for the audiences asked),
// others refused; fail makes it answer 503 instead, block holds each review
// until closed. (client-go's fake clientset runs reactors one at a time, so
// it cannot show reviews in flight together.)
type fakeAPI struct {
	mu       sync.Mutex
	valid    map[string]string // token -> system:serviceaccount:ns:sa
	fail     bool
	block    chan struct{}
	reviews  atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	srv      *httptest.Server
}

func newFakeAPI(t testing.TB) *fakeAPI {
	f := &fakeAPI{valid: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
		http.NotFound(w, req)
		return
	}
	f.reviews.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	block, failing := f.block, f.fail
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if failing {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	var tr authenticationv1.TokenReview
	if err := json.NewDecoder(req.Body).Decode(&tr); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	user, ok := f.valid[tr.Spec.Token]
	f.mu.Unlock()
	if ok {
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: tr.Spec.Audiences,
			User: authenticationv1.UserInfo{Username: user}}
	} else {
		tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenReview"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&tr)
}

func (f *fakeAPI) client(t testing.TB) kubernetes.Interface {
	c, err := kubernetes.NewForConfig(&rest.Config{Host: f.srv.URL, QPS: 1000, Burst: 1000,
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeAPI) set(tok, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if user == "" {
		delete(f.valid, tok)
	} else {
		f.valid[tok] = user
	}
}

// jwt makes a token shaped like a service-account token (its signature is
// not checked by anyone here).
func jwt(t testing.TB, exp time.Time, aud ...string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	c := map[string]any{"sub": "system:serviceaccount:ns:sa", "jti": fmt.Sprint(time.Now().UnixNano(), tokenSeq.Add(1))}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	if len(aud) > 0 {
		c["aud"] = aud
	}
	return enc(map[string]string{"alg": "ES256"}) + "." + enc(c) + ".c2ln"
}

var tokenSeq atomic.Int64

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func callFrom(ip, tok string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}})
	if tok == "" {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok))
}

func newTestReviewer(t testing.TB, api *fakeAPI, clk *clock, o ReviewOptions) *TokenReviewer {
	o.TrustDomain = "cluster.local"
	o.Now = clk.now
	return NewTokenReviewer(api.client(t), o)
}

func TestTokenReviewCachesAnswers(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{SuccessTTL: 10 * time.Second, FailureTTL: 5 * time.Second})
	good := jwt(t, clk.now().Add(time.Hour), "istio-ca")
	api.set(good, "system:serviceaccount:ns:sa")
	for range 5 {
		id, err := r.Authenticate(callFrom("10.0.0.1", good))
		if err != nil || id.SpiffeID() != "spiffe://cluster.local/ns/ns/sa/sa" {
			t.Fatalf("Authenticate = %v, %v", id, err)
		}
	}
	if n := api.reviews.Load(); n != 1 {
		t.Fatalf("5 calls with one token within the TTL cost %d reviews, want 1", n)
	}
	clk.add(11 * time.Second)
	if _, err := r.Authenticate(callFrom("10.0.0.1", good)); err != nil {
		t.Fatal(err)
	}
	if n := api.reviews.Load(); n != 2 {
		t.Fatalf("after the TTL: %d reviews, want 2", n)
	}

	bad := jwt(t, clk.now().Add(time.Hour), "istio-ca")
	for range 3 {
		if _, err := r.Authenticate(callFrom("10.0.0.1", bad)); Reason(err) != "invalid_token" {
			t.Fatalf("refused token: %v", err)
		}
	}
	if n := api.reviews.Load(); n != 3 {
		t.Fatalf("3 calls with one refused token cost %d reviews, want 1", n-2)
	}
	clk.add(6 * time.Second)
	_, _ = r.Authenticate(callFrom("10.0.0.1", bad))
	if n := api.reviews.Load(); n != 4 {
		t.Fatalf("after the failure TTL: %d reviews in all, want 4", n)
	}

	// An accepted answer is never believed past the token's own expiry.
	short := jwt(t, clk.now().Add(3*time.Second), "istio-ca")
	api.set(short, "system:serviceaccount:ns:sa")
	if _, err := r.Authenticate(callFrom("10.0.0.1", short)); err != nil {
		t.Fatal(err)
	}
	clk.add(4 * time.Second)
	before := api.reviews.Load()
	_, _ = r.Authenticate(callFrom("10.0.0.1", short))
	if api.reviews.Load() != before+1 {
		t.Fatalf("a token past its exp was answered from the cache")
	}
}

func TestTokenReviewRefusesImpossibleTokensWithoutReview(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{})
	for _, c := range []struct {
		name, tok, reason string
	}{
		{"no token", "", "no_token"},
		{"garbage", "abcd", "invalid_token"},
		{"not base64", "a.!!!.c", "invalid_token"},
		{"not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", "invalid_token"},
		{"expired past the apiserver's leeway", jwt(t, clk.now().Add(-2*time.Minute), "istio-ca"), "expired_token"},
		{"other audience", jwt(t, clk.now().Add(time.Hour), "vault"), "wrong_audience"},
		{"too long", jwt(t, clk.now().Add(time.Hour), "istio-ca") + string(make([]byte, maxTokenLen)), "invalid_token"},
	} {
		_, err := r.Authenticate(callFrom("10.0.0.1", c.tok))
		if Reason(err) != c.reason || !Definite(err) {
			t.Errorf("%s: %v, want definite %s", c.name, err, c.reason)
		}
	}
	if n := api.reviews.Load(); n != 0 {
		t.Fatalf("%d TokenReviews for tokens that cannot be valid", n)
	}
	// Within the leeway the apiserver decides.
	_, _ = r.Authenticate(callFrom("10.0.0.1", jwt(t, clk.now().Add(-30*time.Second), "istio-ca")))
	if n := api.reviews.Load(); n != 1 {
		t.Fatalf("a token 30 s past exp was not sent to the apiserver (%d reviews)", n)
	}
}

func TestTokenReviewPerSourceBudget(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{SourceRate: 1, SourceBurst: 5})
	garbage := func() string { return jwt(t, clk.now().Add(time.Hour), "istio-ca") }
	limited := 0
	for range 20 {
		_, err := r.Authenticate(callFrom("10.0.0.66", garbage()))
		if Reason(err) == ReasonRateLimited {
			limited++
			if Definite(err) || Code(err) != codes.ResourceExhausted {
				t.Fatalf("rate_limited must be transient and ResourceExhausted: %v", err)
			}
		}
	}
	if n := api.reviews.Load(); n != 5 || limited != 15 {
		t.Fatalf("one address with 20 garbage tokens: %d reviews, %d rate limited; want 5 and 15 (burst 5)", n, limited)
	}
	// Another address is not affected, and valid tokens cost nothing.
	for i := range 30 {
		tok := jwt(t, clk.now().Add(time.Hour), "istio-ca")
		api.set(tok, "system:serviceaccount:ns:sa")
		if _, err := r.Authenticate(callFrom("10.0.0.7", tok)); err != nil {
			t.Fatalf("valid caller #%d from another address: %v", i, err)
		}
	}
	// Refusals without review (garbage, no token) also drain the budget.
	for range 10 {
		_, _ = r.Authenticate(callFrom("10.0.0.8", "abcd"))
	}
	if r.sources.allow(sourceOf(callFrom("10.0.0.8", "")), clk.now()) {
		t.Fatalf("10 garbage calls left budget at an address with burst 5")
	}
	// The budget refills.
	clk.add(2 * time.Second)
	if _, err := r.Authenticate(callFrom("10.0.0.66", garbage())); Reason(err) != "invalid_token" {
		t.Fatalf("after refill: %v, want a review (invalid_token)", err)
	}
}

func TestSourceOf(t *testing.T) {
	for ip, want := range map[string]string{
		"10.1.2.3":             "10.1.2.3/32",
		"::ffff:10.1.2.3":      "10.1.2.3/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
	} {
		if got := sourceOf(callFrom(ip, "")).String(); got != want {
			t.Errorf("%s: %s, want %s", ip, got, want)
		}
	}
	if got := sourceOf(context.Background()); got.IsValid() {
		t.Errorf("no peer: %s, want the shared zero key", got)
	}
}

func TestSourcesBounded(t *testing.T) {
	s := newSources(1, 2, 10)
	now := time.Now()
	for i := range 100 {
		s.allow(sourceOf(callFrom(fmt.Sprintf("10.0.1.%d", i), "")), now)
	}
	if s.len() > 10 {
		t.Fatalf("%d addresses tracked, max 10", s.len())
	}
	// Addresses beyond the bound share the overflow bucket: still limited.
	over := sourceOf(callFrom("10.0.2.1", ""))
	allowed := 0
	for range 10 {
		if s.allow(over, now) {
			allowed++
		}
	}
	if allowed > 2 {
		t.Fatalf("an untracked address got %d calls with burst 2", allowed)
	}
}

func TestAnswersBounded(t *testing.T) {
	c := newAnswers(100)
	now := time.Now()
	for i := range 1000 {
		c.put(tokenKey{byte(i), byte(i >> 8)}, answer{until: now.Add(time.Minute)}, now)
		if c.len() > 100 {
			t.Fatalf("cache holds %d entries, max 100", c.len())
		}
	}
}

func TestTokenReviewSharesConcurrentReviews(t *testing.T) {
	api := newFakeAPI(t)
	api.block = make(chan struct{})
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{})
	tok := jwt(t, clk.now().Add(time.Hour), "istio-ca")
	api.set(tok, "system:serviceaccount:ns:sa")
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Authenticate(callFrom(fmt.Sprintf("10.0.3.%d", i), tok))
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(api.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := api.reviews.Load(); n != 1 {
		t.Fatalf("50 concurrent calls with one token: %d reviews, want 1", n)
	}
}

func TestTokenReviewBoundsInFlight(t *testing.T) {
	api := newFakeAPI(t)
	api.block = make(chan struct{})
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{MaxInFlight: 2, MaxWaiting: 3, ReviewWait: time.Minute})
	var wg sync.WaitGroup
	results := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Authenticate(callFrom(fmt.Sprintf("10.0.4.%d", i), jwt(t, clk.now().Add(time.Hour), "istio-ca")))
			results <- err
		}()
	}
	// 2 in flight, 3 waiting: the other 15 are refused at once.
	overloaded := 0
	for range 15 {
		select {
		case err := <-results:
			if Reason(err) != ReasonOverloaded || Code(err) != codes.Unavailable || Definite(err) {
				t.Fatalf("got %v, want a transient overloaded refusal (Unavailable)", err)
			}
			overloaded++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d calls refused at once; want 15", overloaded)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for api.inFlight.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := api.inFlight.Load(); n != 2 {
		t.Fatalf("%d reviews in flight, want 2", n)
	}
	close(api.block)
	wg.Wait()
	if m := api.maxSeen.Load(); m > 2 {
		t.Fatalf("%d reviews were in flight at once, max 2", m)
	}
}

func TestRecheck(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{})
	tok := jwt(t, clk.now().Add(time.Hour), "istio-ca")
	api.set(tok, "system:serviceaccount:ns:sa")
	call := callFrom("10.0.0.1", tok)
	id, err := r.Authenticate(call)
	if err != nil {
		t.Fatal(err)
	}
	recheck := r.Rechecker(call, id)
	ctx := context.Background()
	// A fresh answer counts for maxAge; maxAge 0 always asks.
	if err := recheck(ctx, time.Second); err != nil || api.reviews.Load() != 1 {
		t.Fatalf("recheck within maxAge: %v, %d reviews; want nil and no new review", err, api.reviews.Load())
	}
	if err := recheck(ctx, 0); err != nil || api.reviews.Load() != 2 {
		t.Fatalf("recheck now: %v, %d reviews; want nil and a new review", err, api.reviews.Load())
	}
	// The apiserver cannot answer: transient, the identity stands.
	api.mu.Lock()
	api.fail = true
	api.mu.Unlock()
	if err := recheck(ctx, 0); err == nil || Definite(err) {
		t.Fatalf("recheck while the apiserver fails: %v, want a transient error", err)
	}
	api.mu.Lock()
	api.fail = false
	api.mu.Unlock()
	// Revoked (service account deleted): definite, and the cached acceptance
	// is dropped, so new calls with the token are refused at once.
	api.set(tok, "")
	if err := recheck(ctx, 0); !Definite(err) {
		t.Fatalf("recheck of a revoked token: %v, want a definite refusal", err)
	}
	before := api.reviews.Load()
	if _, err := r.Authenticate(call); Reason(err) != "invalid_token" || api.reviews.Load() != before {
		t.Fatalf("call after revocation: %v (%d new reviews), want a cached refusal", err, api.reviews.Load()-before)
	}
	// An expired token is revoked by mizzen itself.
	short := jwt(t, clk.now().Add(time.Minute), "istio-ca")
	api.set(short, "system:serviceaccount:ns:sa")
	call = callFrom("10.0.0.1", short)
	id, err = r.Authenticate(call)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(3 * time.Minute)
	if err := r.Rechecker(call, id)(ctx, 0); Reason(err) != "expired_token" {
		t.Fatalf("recheck of an expired token: %v, want expired_token", err)
	}
}

func TestInterceptorCodesAndRecheck(t *testing.T) {
	api := newFakeAPI(t)
	clk := &clock{t: time.Now()}
	r := newTestReviewer(t, api, clk, ReviewOptions{SourceRate: 1, SourceBurst: 1})
	tok := jwt(t, clk.now().Add(time.Hour), "istio-ca")
	api.set(tok, "system:serviceaccount:ns:sa")
	var failures []string
	unary, _ := Interceptors(r, func(_ string, err error) { failures = append(failures, Reason(err)) })
	info := &grpc.UnaryServerInfo{FullMethod: "/test"}
	var gotRecheck bool
	h := func(ctx context.Context, _ any) (any, error) {
		_, gotRecheck = RecheckFromContext(ctx)
		return nil, nil
	}
	if _, err := unary(callFrom("10.0.0.1", tok), nil, info, h); err != nil || !gotRecheck {
		t.Fatalf("valid call: %v, recheck in context %v", err, gotRecheck)
	}
	for _, want := range []codes.Code{codes.Unauthenticated, codes.ResourceExhausted} {
		_, err := unary(callFrom("10.0.0.9", jwt(t, clk.now().Add(time.Hour), "istio-ca")), nil, info, h)
		if status.Code(err) != want {
			t.Fatalf("garbage call: %v, want %s", err, want)
		}
	}
	api.mu.Lock()
	api.fail = true
	api.mu.Unlock()
	if _, err := unary(callFrom("10.0.0.10", jwt(t, clk.now().Add(time.Hour), "istio-ca")), nil, info, h); status.Code(err) != codes.Unavailable {
		t.Fatalf("apiserver down: %v, want Unavailable", err)
	}
	if want := []string{"invalid_token", ReasonRateLimited, ReasonReviewFailed}; fmt.Sprint(failures) != fmt.Sprint(want) {
		t.Fatalf("onFail saw %v, want %v", failures, want)
	}
}
