package model

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	security "istio.io/client-go/pkg/apis/security/v1"
)

// RequestAuthentication: which policies apply to a workload, and the checks of
// one policy on its own. Translation to Envoy's jwt_authn is translate/jwt.go.

// ValidateRequestAuthentication returns the problems of one RequestAuthentication.
// An object with errors is not applied at all (no jwt_authn provider is built
// for any of its rules).
func ValidateRequestAuthentication(ra *security.RequestAuthentication) []ConfigError {
	v := validator{kind: "RequestAuthentication", ns: ra.Namespace, name: ra.Name}
	v.labels("spec.selector.matchLabels", ra.Spec.GetSelector().GetMatchLabels())
	issuers := map[string]bool{}
	for i, r := range ra.Spec.GetJwtRules() {
		f := fmt.Sprintf("spec.jwtRules[%d]", i)
		if r == nil {
			v.fail(f, "MissingJWTRule", "jwt rule must not be null")
			continue
		}
		switch {
		case r.GetIssuer() == "":
			v.fail(f+".issuer", "MissingIssuer", "issuer is required")
		case issuers[r.GetIssuer()]:
			v.fail(f+".issuer", "DuplicateIssuer", fmt.Sprintf("issuer %q is used by an earlier rule of this policy", r.GetIssuer()))
		}
		issuers[r.GetIssuer()] = true
		for j, a := range r.GetAudiences() {
			if a == "" {
				v.fail(fmt.Sprintf("%s.audiences[%d]", f, j), "InvalidAudience", "audience must not be empty")
			}
		}
		switch {
		case r.GetJwks() != "":
			if err := checkJWKS(r.GetJwks()); err != nil {
				v.fail(f+".jwks", "InvalidJWKS", err.Error())
			}
			if r.GetJwksUri() != "" {
				v.warn(f+".jwksUri", "JWKSAndURI", "both jwks and jwksUri are set; the inline jwks is used")
			}
		case r.GetJwksUri() != "":
			if _, err := ParseJWKSURI(r.GetJwksUri()); err != nil {
				v.fail(f+".jwksUri", "InvalidJWKSURI", err.Error())
			}
		default:
			// istiod would discover jwks_uri from <issuer>/.well-known/openid-configuration;
			// mizzen's translation is pure and fetches nothing.
			v.fail(f+".jwksUri", "MissingJWKS", "jwksUri or jwks is required (OpenID discovery from the issuer is not supported)")
		}
		for j, h := range r.GetFromHeaders() {
			v.jwtHeaderName(fmt.Sprintf("%s.fromHeaders[%d].name", f, j), h.GetName())
		}
		for j, p := range r.GetFromParams() {
			if p == "" {
				v.fail(fmt.Sprintf("%s.fromParams[%d]", f, j), "InvalidParam", "query parameter name must not be empty")
			}
		}
		for j, c := range r.GetFromCookies() {
			if c == "" {
				v.fail(fmt.Sprintf("%s.fromCookies[%d]", f, j), "InvalidCookie", "cookie name must not be empty")
			}
		}
		if h := r.GetOutputPayloadToHeader(); h != "" {
			v.jwtHeaderName(f+".outputPayloadToHeader", h)
		}
		for j, c := range r.GetOutputClaimToHeaders() {
			cf := fmt.Sprintf("%s.outputClaimToHeaders[%d]", f, j)
			v.jwtHeaderName(cf+".header", c.GetHeader())
			if c.GetClaim() == "" {
				v.fail(cf+".claim", "MissingClaim", "claim is required")
			}
		}
		if t := r.GetTimeout(); t != nil {
			if err := t.CheckValid(); err != nil || t.AsDuration() <= 0 {
				v.fail(f+".timeout", "InvalidDuration", "timeout must be a positive duration")
			}
		}
	}
	return v.errs
}

// jwtHeaderName: a header the filter reads a token from or writes into.
func (v *validator) jwtHeaderName(f, name string) {
	switch {
	case name == "":
		v.fail(f, "InvalidHeaderName", "header name must not be empty")
	case isInternalHeader(name):
		v.fail(f, "InvalidHeaderName", fmt.Sprintf("header %q is a pseudo-header or Host", name))
	case !validHeaderName(name):
		v.fail(f, "InvalidHeaderName", fmt.Sprintf("%q is not a valid header name", name))
	}
}

// checkJWKS: an inline JWKS must be a JSON object with a non-empty "keys" array
// of objects that each name their key type.
func checkJWKS(s string) error {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(s), &set); err != nil {
		return fmt.Errorf("not a JWKS JSON document: %v", err)
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf(`JWKS has no keys (want {"keys": [...]})`)
	}
	// The members Envoy needs to load each key type (it rejects the whole
	// config otherwise).
	need := map[string][]string{"RSA": {"n", "e"}, "EC": {"crv", "x", "y"}, "oct": {"k"}, "OKP": {"crv", "x"}}
	for i, k := range set.Keys {
		kty, _ := k["kty"].(string)
		members, ok := need[kty]
		if !ok {
			return fmt.Errorf("keys[%d]: kty must be RSA, EC, oct or OKP, got %q", i, kty)
		}
		for _, m := range members {
			v, _ := k[m].(string)
			if v == "" {
				return fmt.Errorf("keys[%d]: %s key has no %q", i, kty, m)
			}
			if m != "crv" {
				if _, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "=")); err != nil {
					return fmt.Errorf("keys[%d].%s is not base64url", i, m)
				}
			}
		}
	}
	return nil
}

// JWKSURI is a parsed jwksUri: where Envoy fetches the keys from.
type JWKSURI struct {
	URI    string
	HTTPS  bool
	Host   string // hostname or IP literal, without brackets
	Port   uint32 // explicit or the scheme's default
	HostIP bool   // Host is an IP literal
}

// ParseJWKSURI accepts absolute http and https URLs with a host.
func ParseJWKSURI(s string) (JWKSURI, error) {
	u, err := url.Parse(s)
	if err != nil {
		return JWKSURI{}, fmt.Errorf("not a URL: %v", err)
	}
	out := JWKSURI{URI: s, HTTPS: u.Scheme == "https", Host: u.Hostname()}
	switch u.Scheme {
	case "http":
		out.Port = 80
	case "https":
		out.Port = 443
	default:
		return JWKSURI{}, fmt.Errorf("scheme must be http or https, got %q", u.Scheme)
	}
	if out.Host == "" {
		return JWKSURI{}, fmt.Errorf("URL %q has no host", s)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return JWKSURI{}, fmt.Errorf("invalid port %q", p)
		}
		out.Port = uint32(n)
	}
	out.HostIP = net.ParseIP(out.Host) != nil
	return out, nil
}

// buildRequestAuthentications keeps the valid RequestAuthentications, oldest
// first. targetRef(s) (policy attached to a Gateway API object) is not
// supported: such a policy is left out with a warning rather than applied
// to a whole namespace.
func (s *Snapshot) buildRequestAuthentications(in *Inputs) {
	for _, ra := range byCreation(in.RequestAuthentications) {
		errs := ValidateRequestAuthentication(ra)
		s.Errors = append(s.Errors, errs...)
		if hasErrors(errs) {
			continue
		}
		if ra.Spec.GetTargetRef() != nil || len(ra.Spec.GetTargetRefs()) > 0 {
			s.addError(ConfigError{Kind: "RequestAuthentication", Namespace: ra.Namespace, Name: ra.Name, Field: "spec.targetRef",
				Code: "UnsupportedField", Warning: true, Message: "targetRef/targetRefs are not supported yet; this RequestAuthentication is ignored"})
			continue
		}
		s.requestAuthns = append(s.requestAuthns, ra)
	}
}

// RequestAuthenticationsFor returns the policies that apply to a proxy, oldest
// first, as Istio selects them: those in the proxy's namespace and in the root
// namespace whose selector is empty or matches the proxy's labels. All of them
// apply together (their rules are combined).
func (s *Snapshot) RequestAuthenticationsFor(p *Proxy) []*security.RequestAuthentication {
	var out []*security.RequestAuthentication
	for _, ra := range s.requestAuthns {
		if ra.Namespace != p.Namespace && ra.Namespace != s.Mesh.GetRootNamespace() {
			continue
		}
		if sel := ra.Spec.GetSelector().GetMatchLabels(); len(sel) > 0 && !LabelsMatch(sel, p.Labels) {
			continue
		}
		out = append(out, ra)
	}
	return out
}
