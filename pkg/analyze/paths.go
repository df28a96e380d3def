package analyze

import (
	"fmt"
	"regexp"
	"strings"
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
