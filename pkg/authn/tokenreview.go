package authn

import (
	"context"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultAudience is the audience istio-agent's tokens are requested for.
const DefaultAudience = "istio-ca"

// TokenReviewer authenticates a Kubernetes service-account token with the
// apiserver's TokenReview API, for one audience. The apiserver does all the
// checking Istio relies on: signature, expiry, audience, and that the service
// account (and, for bound tokens, the pod) still exists.
//
// Results are not cached: a token is reviewed once per xDS stream or CSR, so
// a deleted service account stops getting certificates at once.
type TokenReviewer struct {
	Client      kubernetes.Interface
	Audience    string // default DefaultAudience
	TrustDomain string // of the identities it returns
	Timeout     time.Duration
}

// Authenticate reviews the call's bearer token.
func (r *TokenReviewer) Authenticate(ctx context.Context) (Identity, error) {
	tok, err := BearerToken(ctx)
	if err != nil {
		return Identity{}, err
	}
	return r.Review(ctx, tok)
}

// Review authenticates one token.
func (r *TokenReviewer) Review(ctx context.Context, token string) (Identity, error) {
	aud := r.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{aud}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fail("review_failed", "TokenReview: %w", err)
	}
	st := tr.Status
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
	return Identity{TrustDomain: r.TrustDomain, Namespace: ns, ServiceAccount: sa, Via: "token"}, nil
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
