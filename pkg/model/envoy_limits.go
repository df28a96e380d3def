package model

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	security "istio.io/client-go/pkg/apis/security/v1"
)

// Envoy refuses a whole resource (a NACK: the proxy keeps its old config and
// every later update of that type is blocked) for one value outside its
// limits. The limits below are Envoy 1.40's, from its protoc-gen-validate
// rules (go-control-plane's ValidateAll) and its runtime checks; mizzen
// refuses the object that carries such a value instead of sending it.
const (
	// maxHeaderBytes: HeaderValue.key and .value (request/response headers
	// to add) are at most 16 KiB. Match values have no such rule in Envoy,
	// but a request header that long cannot arrive either, so mizzen caps
	// them the same way.
	maxHeaderBytes = 16384
	// maxHeadersToAdd: Route.request_headers_to_add and
	// response_headers_to_add hold at most 1000 entries each.
	maxHeadersToAdd = 1000
	// maxQueryParamNameBytes: QueryParameterMatcher.name is 1-1024 bytes.
	maxQueryParamNameBytes = 1024
)

// RegexProblem says why Envoy would refuse the regex in a safe_regex
// matcher, or "" when it compiles within MaxRegexProgramSize.
func RegexProblem(re string) string {
	size, err := RegexProgramSize(re)
	switch {
	case errors.Is(err, errRegexTooLarge):
		return fmt.Sprintf("%s compiles to an RE2 program far above the %d instructions Envoy accepts (re2.max_program_size.error_level)",
			quoteShort(re), MaxRegexProgramSize)
	case err != nil:
		return fmt.Sprintf("%s is not a valid RE2 regex: %v", quoteShort(re), err)
	case size > MaxRegexProgramSize:
		return fmt.Sprintf("%s compiles to an RE2 program of %d instructions; Envoy refuses more than %d (re2.max_program_size.error_level), "+
			"and with it the whole resource", quoteShort(re), size, MaxRegexProgramSize)
	}
	return ""
}

// quoteShort quotes a value for a message without repeating a 16 KiB one.
func quoteShort(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// headerNameProblem: Envoy's header names (HeaderMatcher.name,
// HeaderValue.key) are non-empty, without NUL, CR or LF, at most 16 KiB.
func headerNameProblem(name string) string {
	switch {
	case name == "":
		return "header name must not be empty"
	case strings.ContainsAny(name, "\x00\r\n"):
		return fmt.Sprintf("header name %q contains NUL, CR or LF", name)
	case len(name) > maxHeaderBytes:
		return fmt.Sprintf("header name is %d bytes; Envoy accepts at most %d", len(name), maxHeaderBytes)
	}
	return ""
}

// headerValueLengthProblem: a header value mizzen sends is at most 16 KiB.
func headerValueLengthProblem(value string) string {
	if len(value) > maxHeaderBytes {
		return fmt.Sprintf("header value %s is longer than the %d bytes Envoy accepts", quoteShort(value), maxHeaderBytes)
	}
	return ""
}

// rbacRegexes are the regexes translate/rbac_principals.go builds from an
// AuthorizationPolicy value: principals' namespace and service account
// parts are matched by regex on the SPIFFE ID. Keep the two in step; the
// cross-check is TestRBACRegexesMatchTranslate.
func rbacRegexes(key, v string) []string {
	switch key {
	case "source.namespace":
		if v == "*" {
			return []string{".+"}
		}
		ns := regexp.QuoteMeta(v)
		switch {
		case strings.HasPrefix(v, "*"):
			ns = "[^/]*" + regexp.QuoteMeta(strings.TrimPrefix(v, "*"))
		case strings.HasSuffix(v, "*"):
			ns = regexp.QuoteMeta(strings.TrimSuffix(v, "*")) + "[^/]*"
		}
		return []string{`.*/ns/` + ns + `/.*`}
	case "source.serviceAccount":
		if ns, sa, ok := strings.Cut(v, "/"); ok {
			return []string{`.*/ns/` + regexp.QuoteMeta(ns) + `/sa/` + regexp.QuoteMeta(sa)}
		}
		return []string{`.*/sa/` + regexp.QuoteMeta(v)}
	}
	return nil
}

// authzEnvoyProblem says why Envoy would refuse what an AuthorizationPolicy
// field becomes: an RBAC regex over the program size limit, a header name
// or value Envoy does not accept.
func authzEnvoyProblem(f AuthzField) string {
	name, arg, bracket := AuthzBracketKey(f.Key)
	if bracket && name == "request.headers" {
		if msg := headerNameProblem(arg); msg != "" {
			return msg
		}
	}
	for _, v := range append(append([]string(nil), f.Values...), f.NotValues...) {
		for _, re := range rbacRegexes(f.Key, v) {
			if msg := RegexProblem(re); msg != "" {
				return fmt.Sprintf("value %s becomes an RBAC regex on the caller's identity that Envoy refuses: %s", quoteShort(v), msg)
			}
		}
		if strings.HasPrefix(f.Key, "request.headers") || f.Key == "request.host" || f.Key == "request.method" {
			if msg := headerValueLengthProblem(v); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// ValidateAuthorizationPolicy returns what the admission webhook refuses in
// an AuthorizationPolicy: values Envoy's RBAC filter would reject. (Fields
// mizzen cannot express are warnings the model reports; it drops them.)
func ValidateAuthorizationPolicy(ap *security.AuthorizationPolicy) []ConfigError {
	v := validator{kind: "AuthorizationPolicy", ns: ap.Namespace, name: ap.Name}
	for i, r := range ap.Spec.GetRules() {
		base := fmt.Sprintf("spec.rules[%d]", i)
		var fields []AuthzField
		for j, f := range r.GetFrom() {
			fields = append(fields, sourceFields(f.GetSource(), fmt.Sprintf("%s.from[%d].source", base, j))...)
		}
		for j, t := range r.GetTo() {
			fields = append(fields, operationFields(t.GetOperation(), fmt.Sprintf("%s.to[%d].operation", base, j))...)
		}
		for j, c := range r.GetWhen() {
			fields = append(fields, AuthzField{Key: c.GetKey(), Values: c.GetValues(), NotValues: c.GetNotValues(), Field: fmt.Sprintf("%s.when[%d]", base, j)})
		}
		for _, f := range fields {
			if msg := authzEnvoyProblem(f); msg != "" {
				v.fail(f.Field, "EnvoyLimit", msg)
			}
		}
	}
	// The model's warnings (a DENY rule that shuts TCP ports, a "*" matched
	// literally, …) are returned too, for kubectl to print as istiod's
	// validation does.
	return append(v.errs, authzWarnings(ap)...)
}

// serviceEntryPorts: a ServiceEntry's targetPorts and its endpoints' ports
// become endpoint socket addresses, whose port Envoy requires in 1-65535.
func (v *validator) serviceEntryPorts(spec *networkingapi.ServiceEntry) {
	for i, p := range spec.GetPorts() {
		if tp := p.GetTargetPort(); tp > 65535 {
			v.fail(fmt.Sprintf("spec.ports[%d].targetPort", i), "InvalidPort", fmt.Sprintf("targetPort %d is not in 1-65535", tp))
		}
	}
	for i, we := range spec.GetEndpoints() {
		for _, name := range sortedKeys(we.GetPorts()) {
			if n := we.GetPorts()[name]; n == 0 || n > 65535 {
				v.fail(fmt.Sprintf("spec.endpoints[%d].ports[%s]", i, name), "InvalidPort", fmt.Sprintf("port %d is not in 1-65535", n))
			}
		}
	}
}
