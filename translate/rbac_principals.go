package translate

import (
	"net/netip"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Request authentication attributes (request.auth.*) are read from the payload
// jwt_authn stores for a verified token (jwt.go): Envoy has no istio_authn
// filter, so "<iss>/<sub>" is matched on the iss and sub claims themselves. No
// verified token, no metadata: a rule requiring a request principal fails closed.

// rulePrincipals: one principal per `from` entry (ORed), each the AND of its
// fields and of the caller-side when conditions. No from: any caller.
func rulePrincipals(from [][]model.AuthzField, when []model.AuthzField) []*rbacv3.Principal {
	if len(from) == 0 {
		from = [][]model.AuthzField{nil}
	}
	var out []*rbacv3.Principal
	for _, group := range from {
		var ids []*rbacv3.Principal
		for _, f := range append(append([]model.AuthzField(nil), group...), when...) {
			ids = append(ids, fieldPrincipal(f))
		}
		switch len(ids) {
		case 0:
			out = append(out, &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}})
		case 1:
			out = append(out, ids[0])
		default:
			out = append(out, &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}})
		}
	}
	return out
}

// fieldPrincipal: matches one of Values (if any) and none of NotValues.
func fieldPrincipal(f model.AuthzField) *rbacv3.Principal {
	one := func(vals []string) *rbacv3.Principal {
		var ids []*rbacv3.Principal
		for _, v := range vals {
			ids = append(ids, valuePrincipal(f.Key, v))
		}
		if len(ids) == 1 {
			return ids[0]
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
	}
	var and []*rbacv3.Principal
	if len(f.Values) > 0 {
		and = append(and, one(f.Values))
	}
	if len(f.NotValues) > 0 {
		and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: one(f.NotValues)}})
	}
	if len(and) == 1 {
		return and[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: and}}}
}

func valuePrincipal(key, v string) *rbacv3.Principal {
	authenticated := func(m *matcherv3.StringMatcher) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
	}
	name, arg, _ := model.AuthzBracketKey(key)
	switch name {
	case "source.principal":
		// Istio principals are the SPIFFE ID without its scheme.
		return authenticated(wildcardMatcher(v, "spiffe://"))
	case "source.namespace":
		if v == "*" {
			return authenticated(regexMatcher(".+"))
		}
		return authenticated(regexMatcher(`.*/ns/` + wildcardRegex(v, "[^/]*") + `/.*`))
	case "source.serviceAccount":
		ns, sa, ok := strings.Cut(v, "/")
		if !ok {
			return authenticated(regexMatcher(`.*/sa/` + regexp.QuoteMeta(v)))
		}
		return authenticated(regexMatcher(`.*/ns/` + regexp.QuoteMeta(ns) + `/sa/` + regexp.QuoteMeta(sa)))
	case "source.ip":
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: rbacCIDR(v)}}
	case "remote.ip":
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: rbacCIDR(v)}}
	case "request.headers":
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: rbacHeaderMatcher(arg, v, false)}}
	case "request.auth.claims":
		return claimPrincipal(strings.Split(arg, "]["), v)
	case "request.auth.audiences":
		return claimPrincipal([]string{"aud"}, v)
	case "request.auth.presenter":
		return claimPrincipal([]string{"azp"}, v)
	default: // request.auth.principal
		return requestPrincipal(v)
	}
}

// claimPrincipal matches a claim that is a string or a list holding v.
func claimPrincipal(path []string, v string) *rbacv3.Principal {
	str := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: wildcardMatcher(v, "")}}
	list := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: str}}}}
	return orPrincipals(metadataPrincipal(path, str), metadataPrincipal(path, list))
}

// requestPrincipal matches Istio's "<iss>/<sub>" against the iss and sub
// claims. Issuers are often URLs, so every "/" of the value is a possible
// split: the value matches if any split does.
func requestPrincipal(v string) *rbacv3.Principal {
	present := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
	exact := func(x string) *matcherv3.ValueMatcher {
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: x}}}}
	}
	// An empty prefix or suffix ("<iss>/*") means any value; Envoy refuses
	// empty ones (PGV min_len 1), so they become presence.
	prefix := func(x string) *matcherv3.ValueMatcher {
		if x == "" {
			return present
		}
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: x}}}}
	}
	suffix := func(x string) *matcherv3.ValueMatcher {
		if x == "" {
			return present
		}
		return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: x}}}}
	}
	iss := func(m *matcherv3.ValueMatcher) *rbacv3.Principal { return metadataPrincipal([]string{"iss"}, m) }
	sub := func(m *matcherv3.ValueMatcher) *rbacv3.Principal { return metadataPrincipal([]string{"sub"}, m) }
	and := func(a, b *rbacv3.Principal) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{a, b}}}}
	}
	var alts []*rbacv3.Principal
	splits := func(x string, each func(left, right string)) {
		for i := 0; i < len(x); i++ {
			if x[i] == '/' {
				each(x[:i], x[i+1:])
			}
		}
	}
	switch {
	case v == "*":
		return and(iss(present), sub(present))
	case strings.HasSuffix(v, "*"): // "<iss prefix>*" or "<iss>/<sub prefix>*"
		x := strings.TrimSuffix(v, "*")
		alts = append(alts, iss(prefix(x)))
		splits(x, func(l, r string) { alts = append(alts, and(iss(exact(l)), sub(prefix(r)))) })
	case strings.HasPrefix(v, "*"): // "*<sub suffix>" or "*<iss suffix>/<sub>"
		x := strings.TrimPrefix(v, "*")
		alts = append(alts, sub(suffix(x)))
		splits(x, func(l, r string) { alts = append(alts, and(iss(suffix(l)), sub(exact(r)))) })
	default:
		splits(v, func(l, r string) { alts = append(alts, and(iss(exact(l)), sub(exact(r)))) })
		if len(alts) == 0 {
			// No "/": not a valid "<iss>/<sub>", so nothing can match it.
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}
		}
	}
	return orPrincipals(alts...)
}

func orPrincipals(ps ...*rbacv3.Principal) *rbacv3.Principal {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func metadataPrincipal(path []string, value *matcherv3.ValueMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: authnMetadata(path, value)}}
}

func authnMetadata(path []string, value *matcherv3.ValueMatcher) *matcherv3.MetadataMatcher {
	m := &matcherv3.MetadataMatcher{Filter: JWTAuthnFilterName, Value: value}
	for _, k := range append([]string{JWTPayloadMetadataKey}, path...) {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return m
}

// wildcardMatcher: "*" any non-empty value, "x*" prefix, "*x" suffix, else
// exact; prefix is prepended to prefix and exact matches (the SPIFFE scheme
// for principals).
func wildcardMatcher(v, prefix string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatcher(".+")
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix + strings.TrimSuffix(v, "*")}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: prefix + v}}
}

// wildcardRegex turns a prefix/suffix wildcard value into a regex, "*" as any.
func wildcardRegex(v, any string) string {
	switch {
	case strings.HasPrefix(v, "*"):
		return any + regexp.QuoteMeta(strings.TrimPrefix(v, "*"))
	case strings.HasSuffix(v, "*"):
		return regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + any
	}
	return regexp.QuoteMeta(v)
}

func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// headerMatcher: "*" means present; ignoreCase for Host-like values.
func rbacHeaderMatcher(name, v string, ignoreCase bool) *routev3.HeaderMatcher {
	if v == "*" {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	m := wildcardMatcher(v, "")
	m.IgnoreCase = ignoreCase
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

// cidrRange parses "10.0.0.0/8" or a single address (model validated it).
func rbacCIDR(v string) *corev3.CidrRange {
	if p, err := netip.ParsePrefix(v); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
	}
	a, _ := netip.ParseAddr(v)
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}
}
