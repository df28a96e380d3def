// Package certs is mizzen's certificate authority: it keeps the mesh root (or a
// plug-in intermediate), signs SPIFFE workload certificates and mizzen's own
// serving certificate, and helps callers rotate what it issued.
//
// Identity rule (DESIGN.md §2): the SPIFFE ID a certificate carries is always
// supplied by the caller, who got it from an authenticated credential. Nothing
// a requester writes into a CSR ends up in the certificate except its public key.
package certs

import (
	"fmt"
	"strings"
)

// DefaultTrustDomain is Istio's default trust domain.
const DefaultTrustDomain = "cluster.local"

// SpiffeID formats Istio's workload identity. It does not validate; callers
// building IDs from untrusted parts should round-trip through ParseSpiffeID.
func SpiffeID(trustDomain, ns, sa string) string {
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ParseSpiffeID accepts exactly spiffe://<td>/ns/<ns>/sa/<sa>. It is strict on
// purpose: the ID is written into certificates and matched by authorization
// policies, so anything ambiguous (extra segments, dot segments, ports,
// query strings, percent-encoding) is refused rather than normalised.
func ParseSpiffeID(id string) (td, ns, sa string, err error) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", "", "", fmt.Errorf("spiffe id %q: scheme must be spiffe://", id)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", "", fmt.Errorf("spiffe id %q: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", id)
	}
	td, ns, sa = parts[0], parts[2], parts[4]
	if err := validTrustDomain(td); err != nil {
		return "", "", "", fmt.Errorf("spiffe id %q: %w", id, err)
	}
	for _, seg := range []struct{ what, v string }{{"namespace", ns}, {"service account", sa}} {
		if err := validPathSegment(seg.v); err != nil {
			return "", "", "", fmt.Errorf("spiffe id %q: %s: %w", id, seg.what, err)
		}
	}
	return td, ns, sa, nil
}

// validTrustDomain follows the SPIFFE spec's trust domain charset; upper case
// is refused because SPIFFE IDs compare case-sensitively in RBAC.
func validTrustDomain(td string) error {
	if td == "" {
		return fmt.Errorf("empty trust domain")
	}
	if len(td) > 255 {
		return fmt.Errorf("trust domain longer than 255 bytes")
	}
	for _, c := range td {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("trust domain %q: invalid character %q", td, c)
		}
	}
	return nil
}

func validPathSegment(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if s == "." || s == ".." {
		return fmt.Errorf("dot segment %q", s)
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("%q: invalid character %q", s, c)
		}
	}
	return nil
}
