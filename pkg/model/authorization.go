package model

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	securityapi "istio.io/api/security/v1beta1"
	security "istio.io/client-go/pkg/apis/security/v1"
)

// AuthzAction is what an AuthorizationPolicy does with the requests its rules match.
type AuthzAction string

const (
	AuthzAllow AuthzAction = "ALLOW"
	AuthzDeny  AuthzAction = "DENY"
	AuthzAudit AuthzAction = "AUDIT"
)

// AuthzPolicy is one AuthorizationPolicy, validated and normalized: every
// from/to/when field becomes an AuthzField keyed by its Istio attribute name
// (source.principal, request.path, …), so translators handle `from`, `to` and
// `when` the same way.
type AuthzPolicy struct {
	Name, Namespace string
	Action          AuthzAction
	// Selector is spec.selector.matchLabels; empty selects every workload of the
	// namespace (of the mesh, in the root namespace).
	Selector map[string]string
	// Rules nil: the policy has no rules (ALLOW: matches nothing, so denies all).
	Rules []*AuthzRule
}

// AuthzRule is one spec.rules[i]. A request matches when it matches one of From
// (or From is empty), one of To (or To is empty), and every When.
type AuthzRule struct {
	Index int
	From  [][]AuthzField
	To    [][]AuthzField
	When  []AuthzField
}

// AuthzField is one condition: the attribute matches one of Values (if any) and
// none of NotValues.
type AuthzField struct {
	Key       string // Istio attribute, e.g. "request.path", "request.headers[x-user]"
	Values    []string
	NotValues []string
	// Field is the path in the object, for messages: "spec.rules[0].to[0].operation.paths".
	Field string
	// Invalid: the field cannot be expressed (unsupported or malformed). An ALLOW
	// rule with one is dropped; in a DENY rule the field is ignored, so the rule
	// denies more (fail closed). Model reports a warning for each.
	Invalid bool
}

// HTTPOnly reports whether the attribute exists only for HTTP requests.
func (f AuthzField) HTTPOnly() bool { return strings.HasPrefix(f.Key, "request.") }

// AuthorizationPoliciesFor returns the policies that apply to a sidecar with
// these namespace and labels: root namespace policies (mesh-wide) and those of
// its namespace, selected by matchLabels. Sorted by namespace, then name.
func (s *Snapshot) AuthorizationPoliciesFor(ns string, labels map[string]string) []*AuthzPolicy {
	var out []*AuthzPolicy
	root := s.Mesh.GetRootNamespace()
	for _, p := range s.authzPolicies {
		if (p.Namespace == ns || p.Namespace == root) && LabelsMatch(p.Selector, labels) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Snapshot) buildAuthorizationPolicies(in *Inputs) {
	list := append([]*security.AuthorizationPolicy(nil), in.AuthorizationPolicies...)
	sort.Slice(list, func(i, j int) bool {
		if list[i].Namespace != list[j].Namespace {
			return list[i].Namespace < list[j].Namespace
		}
		return list[i].Name < list[j].Name
	})
	for _, ap := range list {
		if p := s.authzPolicy(ap); p != nil {
			s.authzPolicies = append(s.authzPolicies, p)
		}
	}
}

func (s *Snapshot) authzPolicy(ap *security.AuthorizationPolicy) *AuthzPolicy {
	spec := &ap.Spec
	warn := func(field, code, msg string) {
		s.addError(ConfigError{Kind: "AuthorizationPolicy", Namespace: ap.Namespace, Name: ap.Name, Field: field, Code: code, Message: msg, Warning: true})
	}
	if spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0 {
		s.addError(ConfigError{Kind: "AuthorizationPolicy", Namespace: ap.Namespace, Name: ap.Name, Field: "spec.targetRefs", Code: "Unsupported",
			Message: "targetRef(s) attach policies to gateways/waypoints, not supported yet: the policy is not applied"})
		return nil
	}
	p := &AuthzPolicy{Name: ap.Name, Namespace: ap.Namespace, Selector: spec.GetSelector().GetMatchLabels()}
	switch spec.GetAction() {
	case securityapi.AuthorizationPolicy_ALLOW:
		p.Action = AuthzAllow
	case securityapi.AuthorizationPolicy_DENY:
		p.Action = AuthzDeny
	case securityapi.AuthorizationPolicy_AUDIT:
		p.Action = AuthzAudit
	case securityapi.AuthorizationPolicy_CUSTOM:
		// No external authorizer yet: deny what the policy would have sent to
		// it, as istiod does for a CUSTOM policy it cannot build (fail closed).
		// Its provider is not used; this warning covers it.
		warn("spec.action", "Unsupported", "CUSTOM (external authorization) is not supported yet: the requests its rules match are denied")
		p.Action = AuthzDeny
	default:
		warn("spec.action", "InvalidValue", fmt.Sprintf("unknown action %v: treated as DENY", spec.GetAction()))
		p.Action = AuthzDeny
	}
	for i, r := range spec.GetRules() {
		base := fmt.Sprintf("spec.rules[%d]", i)
		rule := &AuthzRule{Index: i}
		if r == nil {
			r = &securityapi.Rule{}
		}
		for j, f := range r.GetFrom() {
			rule.From = append(rule.From, sourceFields(f.GetSource(), fmt.Sprintf("%s.from[%d].source", base, j)))
		}
		for j, t := range r.GetTo() {
			rule.To = append(rule.To, operationFields(t.GetOperation(), fmt.Sprintf("%s.to[%d].operation", base, j)))
		}
		for j, c := range r.GetWhen() {
			rule.When = append(rule.When, AuthzField{Key: c.GetKey(), Values: c.GetValues(), NotValues: c.GetNotValues(), Field: fmt.Sprintf("%s.when[%d]", base, j)})
		}
		check := func(fs []AuthzField) {
			for k := range fs {
				if msg := validateAuthzField(fs[k]); msg != "" {
					fs[k].Invalid = true
					consequence := "the rule is dropped (allows nothing)"
					if p.Action != AuthzAllow {
						consequence = "the field is ignored, so the rule matches more"
					}
					warn(fs[k].Field, "UnsupportedAuthzField", msg+": "+consequence)
					continue
				}
				if msg := literalStars(fs[k]); msg != "" {
					warn(fs[k].Field, "AuthzWildcardLiteral", msg)
				}
			}
		}
		for _, fs := range rule.From {
			check(fs)
		}
		for _, fs := range rule.To {
			check(fs)
		}
		check(rule.When)
		if spec.GetAction() == securityapi.AuthorizationPolicy_DENY && denyHTTPOnly(rule) {
			warn(base, "DenyHTTPOnlyOnTCP", "this DENY rule has only HTTP attributes (paths, methods, hosts, request headers or JWT claims) "+
				"in its from or to: on TCP ports they cannot be checked and are left out, so the rule denies all traffic to the TCP ports "+
				"of the workloads it selects (istiod's validation warns the same); name the ports in to.operation.ports")
		}
		p.Rules = append(p.Rules, rule)
	}
	return p
}

// denyHTTPOnly is istiod's test for a DENY rule that shuts TCP ports: its
// from has no connection-level field and it has no to, or its to names no
// port. A rule with neither from nor to is deliberate (deny everything).
func denyHTTPOnly(r *AuthzRule) bool {
	tcpField := func(groups [][]AuthzField) bool {
		for _, g := range groups {
			for _, f := range g {
				if !f.HTTPOnly() {
					return true
				}
			}
		}
		return false
	}
	portIn := func(groups [][]AuthzField) bool {
		for _, g := range groups {
			for _, f := range g {
				if f.Key == "destination.port" {
					return true
				}
			}
		}
		return false
	}
	return (len(r.From) > 0 && len(r.To) == 0 && !tcpField(r.From)) || (len(r.To) > 0 && !portIn(r.To))
}

// literalStars explains values whose "*" is not where Istio treats it as a
// wildcard. Istio (and so mizzen) reads only a leading or a trailing "*":
// "/api/v*/payments*" is the prefix "/api/v*/payments", "*a*" the suffix
// "a*"; every other "*" is an ordinary character. Valid, but rarely meant.
func literalStars(f AuthzField) string {
	if f.Key == "source.serviceAccount" || f.Key == "source.ip" || f.Key == "remote.ip" || f.Key == "destination.ip" || f.Key == "destination.port" {
		return ""
	}
	for _, v := range append(append([]string(nil), f.Values...), f.NotValues...) {
		if v == "*" || !strings.Contains(v, "*") {
			continue
		}
		if f.Key == "request.path" && PathTemplate(v) {
			continue
		}
		kind, rest := "", ""
		switch {
		case strings.HasPrefix(v, "*"):
			kind, rest = "suffix", v[1:]
		case strings.HasSuffix(v, "*"):
			kind, rest = "prefix", v[:len(v)-1]
		default:
			kind, rest = "exact value", v
		}
		if !strings.Contains(rest, "*") {
			continue
		}
		return fmt.Sprintf("value %q: only a leading or trailing \"*\" is a wildcard, any other \"*\" is matched literally (as Istio does): "+
			"this is the %s %q, so only values with a \"*\" in that place match", v, kind, rest)
	}
	return ""
}

// PathTemplate reports whether an AuthorizationPolicy path is a path template
// ("{*}" one segment, "{**}" the rest), matched with Envoy's uri_template.
func PathTemplate(v string) bool {
	return strings.Contains(v, "{*}") || strings.Contains(v, "{**}")
}

// pathTemplateProblem checks a path template as Envoy's uri_template parser
// needs it (the rules istiod's validation applies): "{*}" and "{**}" only as
// whole segments, "{**}" at most once and last, and other segments plain
// RFC 3986 path characters.
func pathTemplateProblem(v string) string {
	if PathTemplate(v) && !strings.HasPrefix(v, "/") {
		return fmt.Sprintf("path template %q must start with \"/\"", v)
	}
	segments := strings.Split(strings.Trim(v, "/"), "/")
	for i, seg := range segments {
		switch {
		case seg == "{**}" && i != len(segments)-1:
			return fmt.Sprintf("path template %q: {**} must be the last segment", v)
		case seg == "{*}" || seg == "{**}":
		case strings.ContainsAny(seg, "{}"):
			return fmt.Sprintf("path template %q: \"{\" and \"}\" only in a whole segment {*} or {**}", v)
		case !PathTemplate(v):
		case !templateLiteral(seg):
			return fmt.Sprintf("path template %q: segment %q has characters a path template cannot hold (a * within a segment, or outside RFC 3986's pchar)", v, seg)
		}
	}
	return ""
}

// templateLiteral: RFC 3986 pchar (unreserved, pct-encoded, sub-delims, ":", "@").
func templateLiteral(seg string) bool {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()+,;=:@%", c) >= 0:
		default:
			return false
		}
	}
	return seg != ""
}

func sourceFields(src *securityapi.Source, base string) []AuthzField {
	var out []AuthzField
	add := func(key, name string, vals, not []string) {
		if len(vals) == 0 && len(not) == 0 {
			return
		}
		out = append(out, AuthzField{Key: key, Values: vals, NotValues: not, Field: base + "." + name})
	}
	add("source.principal", "principals", src.GetPrincipals(), src.GetNotPrincipals())
	add("request.auth.principal", "requestPrincipals", src.GetRequestPrincipals(), src.GetNotRequestPrincipals())
	add("source.namespace", "namespaces", src.GetNamespaces(), src.GetNotNamespaces())
	add("source.serviceAccount", "serviceAccounts", src.GetServiceAccounts(), src.GetNotServiceAccounts())
	add("source.ip", "ipBlocks", src.GetIpBlocks(), src.GetNotIpBlocks())
	add("remote.ip", "remoteIpBlocks", src.GetRemoteIpBlocks(), src.GetNotRemoteIpBlocks())
	add("source.trustDomain", "trustDomains", src.GetTrustDomains(), src.GetNotTrustDomains())
	return out
}

func operationFields(op *securityapi.Operation, base string) []AuthzField {
	var out []AuthzField
	add := func(key, name string, vals, not []string) {
		if len(vals) == 0 && len(not) == 0 {
			return
		}
		out = append(out, AuthzField{Key: key, Values: vals, NotValues: not, Field: base + "." + name})
	}
	add("request.host", "hosts", op.GetHosts(), op.GetNotHosts())
	add("destination.port", "ports", op.GetPorts(), op.GetNotPorts())
	add("request.method", "methods", op.GetMethods(), op.GetNotMethods())
	add("request.path", "paths", op.GetPaths(), op.GetNotPaths())
	return out
}

// AuthzBracketKey splits "request.headers[x-user]" into ("request.headers", "x-user").
func AuthzBracketKey(key string) (string, string, bool) {
	i := strings.IndexByte(key, '[')
	if i < 0 || !strings.HasSuffix(key, "]") {
		return key, "", false
	}
	return key[:i], key[i+1 : len(key)-1], true
}

// validateAuthzField returns why the field cannot be expressed, or "".
func validateAuthzField(f AuthzField) string {
	if len(f.Values) == 0 && len(f.NotValues) == 0 {
		return "a condition needs values or notValues"
	}
	if msg := authzEnvoyProblem(f); msg != "" { // envoy_limits.go
		return msg
	}
	all := append(append([]string(nil), f.Values...), f.NotValues...)
	each := func(ok func(string) string) string {
		for _, v := range all {
			if msg := ok(v); msg != "" {
				return msg
			}
		}
		return ""
	}
	wildcard := func(v string) string {
		if v == "" {
			return "empty value"
		}
		return ""
	}
	name, arg, bracket := AuthzBracketKey(f.Key)
	switch {
	case bracket && (name == "request.headers" || name == "request.auth.claims"):
		if arg == "" {
			return fmt.Sprintf("%s needs a name in brackets", name)
		}
		return each(wildcard)
	case bracket:
		return fmt.Sprintf("unknown or unsupported attribute %q", f.Key)
	}
	switch f.Key {
	case "source.ip", "remote.ip", "destination.ip":
		return each(func(v string) string {
			if _, err := netip.ParsePrefix(v); err == nil {
				return ""
			}
			if _, err := netip.ParseAddr(v); err == nil {
				return ""
			}
			return fmt.Sprintf("%q is not an IP address or CIDR", v)
		})
	case "destination.port":
		return each(func(v string) string {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
				return fmt.Sprintf("%q is not a port number", v)
			}
			return ""
		})
	case "request.path":
		return each(func(v string) string {
			if strings.ContainsAny(v, "{}") {
				return pathTemplateProblem(v)
			}
			return wildcard(v)
		})
	case "source.serviceAccount":
		return each(func(v string) string {
			if strings.Contains(v, "*") {
				return fmt.Sprintf("service account %q: wildcards are not allowed", v)
			}
			return ""
		})
	case "source.principal", "request.auth.principal", "source.namespace", "request.host", "request.method",
		"request.auth.audiences", "request.auth.presenter", "connection.sni":
		return each(wildcard)
	case "source.trustDomain":
		return "trustDomains is not supported yet"
	}
	return fmt.Sprintf("unknown or unsupported attribute %q", f.Key)
}

// authzWarnings are the warnings building the policy gives (one object, no
// mesh needed).
func authzWarnings(ap *security.AuthorizationPolicy) []ConfigError {
	s := &Snapshot{}
	s.authzPolicy(ap)
	var out []ConfigError
	for _, e := range s.Errors {
		if e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// AuthorizationPolicies lists every valid policy (for analysis).
func (s *Snapshot) AuthorizationPolicies() []*AuthzPolicy { return s.authzPolicies }
