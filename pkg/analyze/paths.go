package analyze

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// patternChars are characters that mean something in globs or regexes but
// nothing in an exact or prefix path: Envoy compares those byte for byte.
const patternChars = "*[](){}^$|\\+"

// regexChars are RE2's special characters.
const regexChars = `.*+?[](){}|^$\`

// pathPatterns: `prefix: /api/v*/users` matches only paths with a literal
// "*", and `regex: /api` only the path "/api" (Envoy matches a regex against
// the whole path). Both are almost always meant otherwise; Istio takes them
// as written, so this is a warning with the likely intent as hint.
func (a *analysis) pathPatterns() {
	for _, vs := range a.appliedVirtualServices() {
		for i, r := range vs.Spec.GetHttp() {
			for j, m := range r.GetMatch() {
				uri := m.GetUri()
				field := fmt.Sprintf("spec.http[%d].match[%d].uri", i, j)
				for _, lit := range []struct{ kind, value string }{{"exact", uri.GetExact()}, {"prefix", uri.GetPrefix()}} {
					if lit.value == "" || !strings.ContainsAny(lit.value, patternChars) {
						continue
					}
					c := lit.value[strings.IndexAny(lit.value, patternChars)]
					hint := "use uri.regex for a pattern (RE2, matched against the whole path)"
					if s := globToRegex(lit.value, lit.kind == "prefix"); s != "" {
						hint = fmt.Sprintf("for a pattern, use uri.regex: %q (RE2, matched against the whole path)", s)
					}
					a.warn("VirtualService", vs.Namespace, vs.Name, field+"."+lit.kind, "PathMatchLooksLikePattern",
						fmt.Sprintf("%s %q contains %q, which Envoy matches literally (%s matches are not patterns): only paths with that character match",
							lit.kind, lit.value, c, lit.kind), hint)
				}
				if re := uri.GetRegex(); re != "" && !strings.ContainsAny(re, regexChars) {
					a.warn("VirtualService", vs.Namespace, vs.Name, field+".regex", "PathMatchLooksLikePattern",
						fmt.Sprintf("regex %q has no special characters, and Envoy matches a regex against the whole path: it matches only %q", re, re),
						fmt.Sprintf("use uri.prefix: %q for everything under it, or uri.exact: %q", re, re))
				}
			}
		}
	}
}

// globToRegex turns a path with only "*" as special character into the RE2
// regex it probably means ("*" within one segment; a prefix may continue);
// "" when the path has other special characters.
func globToRegex(path string, prefix bool) string {
	if strings.ContainsAny(strings.ReplaceAll(path, "*", ""), patternChars) {
		return ""
	}
	var b strings.Builder
	for i, part := range strings.Split(path, "*") {
		if i > 0 {
			b.WriteString("[^/]*")
		}
		b.WriteString(regexp.QuoteMeta(part))
	}
	if prefix {
		b.WriteString(".*")
	}
	return b.String()
}

// authzPaths: an AuthorizationPolicy path such as "/api/v*/payments*" keeps
// its rule, but Istio (and mizzen) match the inner "*" literally, so it is the
// prefix "/api/v*/payments". What was meant is usually "any one segment":
// a path template ("{*}" one whole segment, "{**}" the rest), or the explicit
// paths. The model's warning says what happens; this adds the rewrite.
func (a *analysis) authzPaths() {
	for _, p := range a.snap.AuthorizationPolicies() {
		for _, r := range p.Rules {
			for _, g := range r.To {
				for _, f := range g {
					if f.Key != "request.path" || f.Invalid {
						continue
					}
					for _, v := range append(append([]string(nil), f.Values...), f.NotValues...) {
						inner := strings.Trim(v, "*")
						if model.PathTemplate(v) || !strings.Contains(inner, "*") {
							continue
						}
						kind := "prefix"
						if strings.HasPrefix(v, "*") {
							kind = "suffix"
						} else if !strings.HasSuffix(v, "*") {
							kind = "exact path"
						}
						literal := strings.TrimSuffix(strings.TrimPrefix(v, "*"), "*")
						if kind == "suffix" {
							literal = v[1:]
						}
						msg := fmt.Sprintf("path %q keeps its rule, but only a leading or trailing \"*\" is a wildcard: the %s %q is matched with its \"*\" literally (as Istio does), so %s",
							v, kind, literal, literalConsequence(p.Action))
						hint := "list the explicit paths, or use a path template: {*} for one whole segment, {**} (last) for the rest"
						if ts := pathTemplatesFor(v); len(ts) > 0 {
							hint = fmt.Sprintf("for any value in those segments use the path template(s) %s ({*} one whole segment, {**} any rest), or list the explicit paths (e.g. %q)",
								strings.Join(ts, " and "), strings.Replace(v, "*", "1", 1))
						}
						a.warn("AuthorizationPolicy", p.Namespace, p.Name, f.Field, "AuthzWildcardLiteral", msg, hint)
					}
				}
			}
		}
	}
}

func literalConsequence(action model.AuthzAction) string {
	if action == model.AuthzAllow {
		return "requests with any other character there are not allowed by this rule"
	}
	return "only requests whose path has a \"*\" there match this rule"
}

// pathTemplatesFor rewrites a path whose segments hold "*" into the path
// templates that match any value of those segments: a segment with "*" is
// {*}; a trailing "*" (the prefix) adds the same path with /{**} after it
// ({**} needs a slash before it). nil when nothing sensible fits.
func pathTemplatesFor(v string) []string {
	rest := false
	if strings.HasSuffix(v, "*") {
		v, rest = strings.TrimSuffix(v, "*"), true
	}
	if strings.HasPrefix(v, "*") || !strings.HasPrefix(v, "/") {
		return nil
	}
	segs := strings.Split(strings.TrimPrefix(v, "/"), "/")
	for i, s := range segs {
		if strings.Contains(s, "*") {
			segs[i] = "{*}"
		}
	}
	base := "/" + strings.Join(segs, "/")
	if !rest {
		return []string{fmt.Sprintf("%q", base)}
	}
	if strings.HasSuffix(base, "/") {
		return []string{fmt.Sprintf("%q", base+"{**}")}
	}
	return []string{fmt.Sprintf("%q", base), fmt.Sprintf("%q", base+"/{**}")}
}
