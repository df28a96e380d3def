package authn

import (
	"context"
	"crypto/sha256"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultAudience is the audience istio-agent's tokens are requested for.
const DefaultAudience = "istio-ca"

// ReviewOptions configure a TokenReviewer. Zero values take the defaults
// named on each field.
type ReviewOptions struct {
	Audience    string // default DefaultAudience
	TrustDomain string // of the identities it returns
	Timeout     time.Duration

	// SuccessTTL is how long an accepted token is believed without asking
	// the apiserver again (default 10 s), never past the token's exp.
	// FailureTTL is how long a refused token is refused without asking
	// (default 5 s). CacheSize bounds each cache (default 10,000 tokens).
	SuccessTTL time.Duration
	FailureTTL time.Duration
	CacheSize  int

	// MaxInFlight bounds the TokenReviews in flight for calls not yet
	// authenticated (default 8); at most MaxWaiting more wait for a slot
	// (default 64), each at most ReviewWait (default 2 s): beyond that calls
	// are refused as overloaded. Re-checks of proven identities have their
	// own MaxInFlight slots, so a flood never delays them.
	MaxInFlight int
	MaxWaiting  int
	ReviewWait  time.Duration

	// SourceRate and SourceBurst are each source address's budget of
	// unauthenticated calls (default 5 a second, burst 20), tracked for at
	// most MaxSources addresses (default 10,000). Over budget, a call is
	// refused and its connection closed, and new connections wait for the
	// budget (conns.go), at most MaxHeldConns of them (default 4,096).
	SourceRate   float64
	SourceBurst  int
	MaxSources   int
	MaxHeldConns int

	Metrics *Metrics
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

func (o *ReviewOptions) defaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.SuccessTTL, 10*time.Second)
	def(&o.FailureTTL, 5*time.Second)
	def(&o.ReviewWait, 2*time.Second)
	defInt(&o.CacheSize, 10000)
	defInt(&o.MaxInFlight, 8)
	defInt(&o.MaxWaiting, 64)
	defInt(&o.SourceBurst, 20)
	defInt(&o.MaxSources, 10000)
	defInt(&o.MaxHeldConns, 4096)
	if o.SourceRate <= 0 {
		o.SourceRate = 5
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// TokenReviewer authenticates a Kubernetes service-account token with the
// apiserver's TokenReview API, for one audience. The apiserver does all the
// checking Istio relies on: signature, expiry, audience, and that the service
// account (and, for bound tokens, the pod) still exists.
//
// Reviews cost the apiserver and are open to anyone who can reach the secure
// port, so they are rationed: answers are cached by token hash (accepted ones
// for SuccessTTL, refused ones for FailureTTL), concurrent calls with one
// token share one review, tokens that cannot be valid are refused without
// one, each source address has a budget of unauthenticated calls, and the
// reviews in flight are bounded. The Kubernetes client should be its own,
// with its own QPS, so reviews never starve the informers or the reverse.
//
// Re-checks (Rechecker) bypass the cache: they are how a revoked identity's
// open stream is found and ended.
type TokenReviewer struct {
	client kubernetes.Interface
	o      ReviewOptions

	calls, rechecks *gate
	sources         *sources

	connsMu  sync.Mutex
	listener *gatedListener // set by Listener

	mu     sync.Mutex
	good   *answers // accepted tokens
	bad    *answers // refused tokens
	flight map[tokenKey]*flight
}

// flight is one TokenReview that calls with the same token wait for.
type flight struct {
	done chan struct{}
	ans  answer
}

// NewTokenReviewer returns a reviewer using client (give it a client of its
// own: see TokenReviewer).
func NewTokenReviewer(client kubernetes.Interface, o ReviewOptions) *TokenReviewer {
	o.defaults()
	return &TokenReviewer{
		client:   client,
		o:        o,
		calls:    &gate{slots: make(chan struct{}, o.MaxInFlight), wait: o.ReviewWait, maxWaiting: o.MaxWaiting},
		rechecks: &gate{slots: make(chan struct{}, o.MaxInFlight)},
		sources:  newSources(o.SourceRate, o.SourceBurst, o.MaxSources),
		good:     newAnswers(o.CacheSize),
		bad:      newAnswers(o.CacheSize),
		flight:   map[tokenKey]*flight{},
	}
}

// Authenticate reviews the call's bearer token.
func (r *TokenReviewer) Authenticate(ctx context.Context) (Identity, error) {
	now := r.o.Now()
	src := sourceOf(ctx)
	tok, err := BearerToken(ctx)
	if err != nil {
		return Identity{}, r.refuse(ctx, src, now, err)
	}
	key := tokenKey(sha256.Sum256([]byte(tok)))
	r.mu.Lock()
	if a, ok := r.good.get(key, now); ok {
		r.mu.Unlock()
		r.o.Metrics.cacheHit("authenticated")
		return a.id, nil
	}
	a, refused := r.bad.get(key, now)
	r.mu.Unlock()
	if refused {
		r.o.Metrics.cacheHit("refused")
		return Identity{}, r.refuse(ctx, src, now, a.err)
	}
	c, err := precheck(tok, r.o.Audience, now)
	if err != nil {
		return Identity{}, r.refuse(ctx, src, now, err)
	}
	refund := r.sources.reserve(src, now)
	if refund == nil {
		r.o.Metrics.throttle(ReasonRateLimited)
		r.dropConn(ctx)
		return Identity{}, fail(ReasonRateLimited, "too many unauthenticated calls from %s; retry later", src)
	}
	ans := r.review(ctx, key, tok, c, r.calls)
	if ans.err == nil {
		// Valid callers are not the flood: their review is free.
		refund()
	}
	if ans.err != nil {
		if Reason(ans.err) == ReasonOverloaded {
			r.o.Metrics.throttle(ReasonOverloaded)
		}
		return Identity{}, ans.err
	}
	return ans.id, nil
}

// refuse charges a call refused without a review to its address; over
// budget, its connection is closed.
func (r *TokenReviewer) refuse(ctx context.Context, src netip.Prefix, now time.Time, err error) error {
	if !r.sources.allow(src, now) {
		r.dropConn(ctx)
	}
	return err
}

// Rechecker returns the Recheck of the call's token (see Rechecker). A token
// mizzen itself finds expired is a definite refusal, so a stream does not
// outlive its token either.
func (r *TokenReviewer) Rechecker(callCtx context.Context, id Identity) Recheck {
	tok, err := BearerToken(callCtx)
	if err != nil {
		return func(context.Context, time.Duration) error { return err }
	}
	key := tokenKey(sha256.Sum256([]byte(tok)))
	return func(ctx context.Context, maxAge time.Duration) error {
		now := r.o.Now()
		r.mu.Lock()
		a, ok := r.good.get(key, now)
		r.mu.Unlock()
		if ok && maxAge > 0 && now.Sub(a.at) <= maxAge && a.id == id {
			return nil
		}
		c, err := precheck(tok, r.o.Audience, now)
		if err != nil {
			r.mu.Lock()
			r.good.delete(key)
			r.mu.Unlock()
			return err
		}
		ans := r.review(ctx, key, tok, c, r.rechecks)
		if ans.err != nil {
			return ans.err
		}
		if ans.id != id {
			return fail("identity_changed", "token now proves %s, not %s", ans.id.SpiffeID(), id.SpiffeID())
		}
		return nil
	}
}

// review asks the apiserver about tok, sharing one review among concurrent
// calls with the same token, and caches the answer.
func (r *TokenReviewer) review(ctx context.Context, key tokenKey, tok string, c claims, g *gate) answer {
	r.mu.Lock()
	if f, ok := r.flight[key]; ok {
		r.mu.Unlock()
		select {
		case <-f.done:
			return f.ans
		case <-ctx.Done():
			return answer{err: fail(ReasonReviewFailed, "waiting for the token's review: %w", ctx.Err())}
		}
	}
	f := &flight{done: make(chan struct{})}
	r.flight[key] = f
	r.mu.Unlock()

	f.ans = r.ask(ctx, tok, c, g)
	r.mu.Lock()
	delete(r.flight, key)
	now := r.o.Now()
	switch {
	case f.ans.err == nil:
		until := now.Add(r.o.SuccessTTL)
		if exp := c.expiry(); !exp.IsZero() && exp.Before(until) {
			until = exp
		}
		f.ans.until = until
		r.good.put(key, f.ans, now)
		r.bad.delete(key)
	case Definite(f.ans.err):
		f.ans.until = now.Add(r.o.FailureTTL)
		r.bad.put(key, f.ans, now)
		r.good.delete(key)
	}
	r.mu.Unlock()
	close(f.done)
	return f.ans
}

// ask sends one TokenReview, within a slot of g.
func (r *TokenReviewer) ask(ctx context.Context, tok string, c claims, g *gate) answer {
	if err := g.enter(ctx); err != nil {
		return answer{err: err}
	}
	defer g.leave()
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	tr, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: []string{r.o.Audience}},
	}, metav1.CreateOptions{})
	at := r.o.Now()
	if err != nil {
		r.o.Metrics.review("error")
		return answer{err: fail(ReasonReviewFailed, "TokenReview: %w", err), at: at}
	}
	id, err := r.identity(tr.Status)
	if err != nil {
		r.o.Metrics.review("refused")
		return answer{err: err, at: at}
	}
	r.o.Metrics.review("authenticated")
	return answer{id: id, at: at}
}

// identity reads the apiserver's answer.
func (r *TokenReviewer) identity(st authenticationv1.TokenReviewStatus) (Identity, error) {
	aud := r.o.Audience
	if !st.Authenticated {
		msg := st.Error
		if msg == "" {
			msg = "not authenticated"
		}
		reason := "invalid_token"
		switch {
		case strings.Contains(msg, "audience"):
			reason = "wrong_audience"
		case strings.Contains(msg, "expired"):
			reason = "expired_token"
		}
		return Identity{}, fail(reason, "token refused by the apiserver: %s", msg)
	}
	// An apiserver that ignores spec.audiences answers with its own; only a
	// token for our audience may get a certificate.
	if !slices.Contains(st.Audiences, aud) {
		return Identity{}, fail("wrong_audience", "token is not for audience %q (audiences %v)", aud, st.Audiences)
	}
	ns, sa, ok := parseServiceAccountUser(st.User.Username)
	if !ok {
		return Identity{}, fail("not_service_account", "token of %q is not a service account's", st.User.Username)
	}
	return Identity{TrustDomain: r.o.TrustDomain, Namespace: ns, ServiceAccount: sa, Via: "token"}, nil
}

// parseServiceAccountUser splits system:serviceaccount:<ns>:<sa>.
func parseServiceAccountUser(u string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(u, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", false
	}
	return ns, sa, true
}
