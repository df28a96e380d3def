// Package authn proves who is calling mizzen's secure port (15012): the xDS
// stream of a proxy and the Istio CSR API. An Identity comes only from a
// verified credential (DESIGN.md "Identity rule"); nothing the caller writes
// in node metadata or a CSR is trusted.
package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/mizzenmesh/mizzen/certs"
)

// Identity is a workload identity proven by a credential.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
	// Via names the credential that proved it ("token", "insecure-dev-metadata").
	Via string
}

// SpiffeID is the identity's URI SAN, spiffe://<td>/ns/<ns>/sa/<sa>.
func (id Identity) SpiffeID() string {
	return certs.SpiffeID(id.TrustDomain, id.Namespace, id.ServiceAccount)
}

// Authenticator checks the credential a gRPC call carries (its incoming
// metadata and peer, both in ctx).
type Authenticator interface {
	Authenticate(ctx context.Context) (Identity, error)
}

// Failure is an authentication refusal with a reason fit for a metric label.
//
// Reasons are of two kinds. Definite: the credential itself is refused
// (no_token, invalid_token, expired_token, wrong_audience,
// not_service_account, identity_changed): the identity is gone and an open
// stream that proved it is ended. Transient: mizzen could not get an answer
// (review_failed: the apiserver did not answer; overloaded: too many reviews
// waiting; rate_limited: the caller's address is over its budget of
// unauthenticated calls): the caller may retry, and an open stream is kept.
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string { return f.Reason + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

func fail(reason string, format string, args ...any) error {
	return &Failure{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Reason is the metric label of err: a Failure's reason, else "error".
func Reason(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return "error"
}

// Transient failure reasons: no answer about the credential, rather than a
// refusal of it.
const (
	ReasonReviewFailed = "review_failed"
	ReasonOverloaded   = "overloaded"
	ReasonRateLimited  = "rate_limited"
)

// Definite reports whether err refuses the credential itself (see Failure);
// any error that is not a Failure, or a transient Failure, is not definite.
func Definite(err error) bool {
	var f *Failure
	if !errors.As(err, &f) {
		return false
	}
	switch f.Reason {
	case ReasonReviewFailed, ReasonOverloaded, ReasonRateLimited:
		return false
	}
	return true
}

// BearerToken returns the token of the call's `authorization: Bearer <token>`
// metadata, which is how istio-agent and mizzen's sidecar bootstrap send the
// service-account token.
func BearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", fail("no_token", "no authorization metadata")
	}
	if len(vals) > 1 {
		return "", fail("invalid_token", "%d authorization values", len(vals))
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "", fail("invalid_token", "authorization is not a Bearer token")
	}
	return tok, nil
}

type ctxKey struct{}

type recheckKey struct{}

// Recheck asks again whether the credential that proved an identity still
// proves it, accepting an answer of the apiserver at most maxAge old (0: ask
// now). It returns nil while it does, a definite Failure once the identity is
// revoked (deleted service account or pod, expired token), and a transient
// error when no answer could be had.
type Recheck func(ctx context.Context, maxAge time.Duration) error

// Rechecker is an Authenticator whose proofs can be checked again later, so
// a long-lived stream does not outlive its identity.
type Rechecker interface {
	Authenticator
	// Rechecker returns the Recheck of the credential the call in callCtx
	// carried, which proved id.
	Rechecker(callCtx context.Context, id Identity) Recheck
}

// WithRecheck records how the call's identity can be checked again.
func WithRecheck(ctx context.Context, r Recheck) context.Context {
	return context.WithValue(ctx, recheckKey{}, r)
}

// RecheckFromContext returns the Recheck recorded by WithRecheck.
func RecheckFromContext(ctx context.Context) (Recheck, bool) {
	r, ok := ctx.Value(recheckKey{}).(Recheck)
	return r, ok && r != nil
}

// WithIdentity records the identity the transport proved for this call.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity recorded by WithIdentity.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
