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
type Failure struct {
	Reason string // no_token, invalid_token, wrong_audience, not_service_account, review_failed
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

// WithIdentity records the identity the transport proved for this call.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity recorded by WithIdentity.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
