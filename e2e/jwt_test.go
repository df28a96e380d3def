package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// testJWTKey is an RSA key made for one test: its JWKS and RS256 tokens
// signed with it (compact JWS, built by hand: no JWT module needed).
type testJWTKey struct {
	key *rsa.PrivateKey
	kid string
}

func newTestJWTKey(t *testing.T) *testJWTKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &testJWTKey{key: k, kid: "e2e"}
}

func (k *testJWTKey) jwks() string {
	b64 := base64.RawURLEncoding.EncodeToString
	return fmt.Sprintf(`{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":%q,"n":%q,"e":%q}]}`,
		k.kid, b64(k.key.N.Bytes()), b64(big.NewInt(int64(k.key.E)).Bytes()))
}

func (k *testJWTKey) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	head, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": k.kid})
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}

// TestGatewayRequestAuthentication: a RequestAuthentication selecting the
// ingress gateway, with an inline JWKS of a key made here. Istio's semantics:
// a bad token is 401, no token passes, a valid token passes (its payload is
// forwarded in outputPayloadToHeader, the original token is stripped).
func TestGatewayRequestAuthentication(t *testing.T) {
	b := rig.Bookinfo(t)
	key := newTestJWTKey(t)
	const issuer = "testing@secure.mizzen.io"
	b.WriteConfig(t, "jwt.yaml", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ingress-jwt, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  jwtRules:
  - issuer: %s
    audiences: [bookinfo]
    jwks: '%s'
    outputPayloadToHeader: x-jwt-payload
`, issuer, key.jwks()))

	get := func(ctx context.Context, token string) (int, map[string]string, error) {
		h := map[string]string{}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		r, err := b.Get(ctx, "", "/productpage", h)
		if err != nil {
			return 0, nil, err
		}
		return r.Status, r.Body.Headers, nil
	}
	eventually(t, 10*time.Second, "jwt_authn on the gateway (Bearer abcd → 401)", func(ctx context.Context) error {
		if st, _, err := get(ctx, "abcd"); err != nil || st != 401 {
			return fmt.Errorf("Bearer abcd: status %d, %v", st, err)
		}
		return nil
	})
	now := time.Now()
	valid := key.token(t, map[string]any{"iss": issuer, "sub": "alice", "aud": "bookinfo", "exp": now.Add(time.Hour).Unix()})
	other := newTestJWTKey(t)
	// Envoy answers a token for another audience with 403 (JwtAudienceNotAllowed),
	// every other verification failure with 401 — as behind istiod.
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", 200},
		{"valid token", valid, 200},
		{"garbage", "abcd", 401},
		{"signed by another key", other.token(t, map[string]any{"iss": issuer, "sub": "alice", "aud": "bookinfo", "exp": now.Add(time.Hour).Unix()}), 401},
		{"expired", key.token(t, map[string]any{"iss": issuer, "sub": "alice", "aud": "bookinfo", "exp": now.Add(-time.Hour).Unix()}), 401},
		{"wrong audience", key.token(t, map[string]any{"iss": issuer, "sub": "alice", "aud": "other", "exp": now.Add(time.Hour).Unix()}), 403},
		{"unknown issuer", key.token(t, map[string]any{"iss": "someone-else", "sub": "alice", "aud": "bookinfo", "exp": now.Add(time.Hour).Unix()}), 401},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, seen, err := get(ctx, tc.token)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, st, tc.status)
		}
		if tc.name == "valid token" && st == 200 {
			if seen["Authorization"] != "" || seen["authorization"] != "" {
				t.Errorf("valid token: the app saw the token although forwardOriginalToken is false: %v", seen)
			}
			payload := seen["X-Jwt-Payload"] + seen["x-jwt-payload"]
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
			if err != nil || !strings.Contains(string(raw), `"sub":"alice"`) {
				t.Errorf("valid token: x-jwt-payload %q (decoded %q, %v), want the payload with sub alice", payload, raw, err)
			}
		}
	}

	// With an AuthorizationPolicy on the gateway requiring a request
	// principal, the request without a token is now refused (403), as in
	// Istio's "require JWT at ingress" task; a valid token still passes.
	b.WriteConfig(t, "require-jwt.yaml", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["%s/*"]}}]
`, issuer))
	eventually(t, 10*time.Second, "no token → 403 once a request principal is required", func(ctx context.Context) error {
		if st, _, err := get(ctx, ""); err != nil || st != 403 {
			return fmt.Errorf("no token: status %d, %v", st, err)
		}
		return nil
	})
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{{"no token", "", 403}, {"valid token", valid, 200}, {"garbage", "abcd", 401}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, _, err := get(ctx, tc.token)
		cancel()
		if err != nil || st != tc.status {
			t.Errorf("with the policy, %s: status %d (%v), want %d", tc.name, st, err, tc.status)
		}
	}
}
