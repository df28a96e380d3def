package authn

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// maxTokenLen bounds a bearer token: a service-account token is about 1 KB;
// nothing longer is worth a TokenReview.
const maxTokenLen = 16 << 10

// expiryLeeway is the apiserver's: it accepts a token up to a minute past its
// exp (go-jose's jwt.DefaultLeeway), so mizzen refuses one on its own only
// after that, never one the apiserver would still accept.
const expiryLeeway = time.Minute

// claims are what mizzen reads of a token's JWT payload. Before the apiserver
// vouches for the token they are unverified: they may only make mizzen refuse
// a token early (the forger's loss), never accept one. After the apiserver
// accepted it, exp bounds how long the answer is cached.
type claims struct {
	Exp int64    `json:"exp"`
	Aud audience `json:"aud"`
}

// audience is a JWT aud claim, a string or a list of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// precheck refuses, without asking the apiserver, a token that cannot be a
// service-account token for aud: not a JWT, expired past the apiserver's
// leeway, or for other audiences only. A token it passes still needs the
// apiserver's review.
func precheck(tok, aud string, now time.Time) (claims, error) {
	if len(tok) > maxTokenLen {
		return claims{}, fail("invalid_token", "token of %d bytes is longer than %d", len(tok), maxTokenLen)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims{}, fail("invalid_token", "token is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}, fail("invalid_token", "token payload is not base64url: %v", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return claims{}, fail("invalid_token", "token payload is not JSON claims: %v", err)
	}
	if c.Exp != 0 && now.After(time.Unix(c.Exp, 0).Add(expiryLeeway)) {
		return claims{}, fail("expired_token", "token expired at %s", time.Unix(c.Exp, 0).UTC().Format(time.RFC3339))
	}
	if len(c.Aud) > 0 && !slices.Contains(c.Aud, aud) {
		return claims{}, fail("wrong_audience", "token is for audiences %v, not %q", []string(c.Aud), aud)
	}
	return c, nil
}

// expiry is when the token stops being valid (zero: it says nothing).
func (c claims) expiry() time.Time {
	if c.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}
