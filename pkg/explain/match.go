package explain

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// stringMatch evaluates an Envoy StringMatcher.
func stringMatch(m *matcherv3.StringMatcher, v string) (bool, string) {
	if m == nil {
		return true, "any"
	}
	cmp := func(a, b string) (string, string) {
		if m.GetIgnoreCase() {
			return strings.ToLower(a), strings.ToLower(b)
		}
		return a, b
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		a, b := cmp(v, p.Exact)
		return a == b, fmt.Sprintf("exact %q", p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		a, b := cmp(v, p.Prefix)
		return strings.HasPrefix(a, b), fmt.Sprintf("prefix %q", p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		a, b := cmp(v, p.Suffix)
		return strings.HasSuffix(a, b), fmt.Sprintf("suffix %q", p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		a, b := cmp(v, p.Contains)
		return strings.Contains(a, b), fmt.Sprintf("contains %q", p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, fmt.Sprintf("regex %q (cannot evaluate: %v)", p.SafeRegex.GetRegex(), err)
		}
		return re.MatchString(v), fmt.Sprintf("regex %q", p.SafeRegex.GetRegex())
	}
	return false, "unsupported string matcher"
}

// headerMatch evaluates a route or RBAC HeaderMatcher.
func headerMatch(h *routev3.HeaderMatcher, r *Request) (bool, string) {
	v, present := r.header(h.GetName())
	var ok bool
	var what string
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		ok, what = present == s.PresentMatch, "present"
		if !s.PresentMatch {
			what = "absent"
		}
	case *routev3.HeaderMatcher_StringMatch:
		if !present && !h.GetTreatMissingHeaderAsEmpty() {
			ok, what = false, "missing"
		} else {
			ok, what = stringMatch(s.StringMatch, v)
		}
	case *routev3.HeaderMatcher_ExactMatch:
		ok, what = present && v == s.ExactMatch, fmt.Sprintf("exact %q", s.ExactMatch)
	case *routev3.HeaderMatcher_PrefixMatch:
		ok, what = present && strings.HasPrefix(v, s.PrefixMatch), fmt.Sprintf("prefix %q", s.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		ok, what = present && strings.HasSuffix(v, s.SuffixMatch), fmt.Sprintf("suffix %q", s.SuffixMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		ok, what = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}}, v)
		ok = ok && present
	default:
		ok, what = present, "present"
	}
	if h.GetInvertMatch() {
		ok, what = !ok, "not "+what
	}
	return ok, fmt.Sprintf("header %s %s (request: %s)", h.GetName(), what, shown(v, present))
}

func shown(v string, present bool) string {
	if !present {
		return "absent"
	}
	return fmt.Sprintf("%q", v)
}

// routeMatch evaluates a route's match; the reasons list each condition.
func routeMatch(m *routev3.RouteMatch, r *Request) (bool, []string) {
	path := r.Path()
	pathOnly := path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		pathOnly = path[:i]
	}
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	fold := func(s string) string {
		if cs {
			return s
		}
		return strings.ToLower(s)
	}
	var ok bool
	var why string
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		ok, why = strings.HasPrefix(fold(pathOnly), fold(p.Prefix)), fmt.Sprintf("path prefix %q", p.Prefix)
	case *routev3.RouteMatch_Path:
		ok, why = fold(pathOnly) == fold(p.Path), fmt.Sprintf("path exact %q", p.Path)
	case *routev3.RouteMatch_SafeRegex:
		ok, why = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: p.SafeRegex}}, pathOnly)
		why = "path " + why
	case *routev3.RouteMatch_PathSeparatedPrefix:
		pre := fold(p.PathSeparatedPrefix)
		po := fold(pathOnly)
		ok = po == pre || strings.HasPrefix(po, pre+"/")
		why = fmt.Sprintf("path segment prefix %q", p.PathSeparatedPrefix)
	default:
		ok, why = false, "unsupported path match"
	}
	reasons := []string{mark(ok) + why + fmt.Sprintf(" (request: %q)", pathOnly)}
	all := ok
	for _, h := range m.GetHeaders() {
		hok, hw := headerMatch(h, r)
		reasons = append(reasons, mark(hok)+hw)
		all = all && hok
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for _, qp := range m.GetQueryParameters() {
		vals, present := q[qp.GetName()]
		var qok bool
		var qw string
		switch {
		case qp.GetPresentMatch():
			qok, qw = present, "present"
		case qp.GetStringMatch() != nil:
			if present {
				qok, qw = stringMatch(qp.GetStringMatch(), vals[0])
			} else {
				_, qw = stringMatch(qp.GetStringMatch(), "")
			}
		}
		reasons = append(reasons, mark(qok)+fmt.Sprintf("query %s %s", qp.GetName(), qw))
		all = all && qok
	}
	return all, reasons
}

func mark(ok bool) string {
	if ok {
		return "✓ "
	}
	return "✗ "
}

// domainMatch is Envoy's virtual host domain matching; lower score is better
// (exact 0, suffix wildcard 1, prefix wildcard 2, "*" 3), -1 no match.
func domainMatch(domain, host string) int {
	domain, host = strings.ToLower(domain), strings.ToLower(host)
	switch {
	case domain == host:
		return 0
	case domain == "*":
		return 3
	case strings.HasPrefix(domain, "*") && strings.HasSuffix(host, domain[1:]) && len(host) > len(domain)-1:
		return 1
	case strings.HasSuffix(domain, "*") && strings.HasPrefix(host, domain[:len(domain)-1]) && len(host) > len(domain)-1:
		return 2
	}
	return -1
}

// cidrContains: does the CIDR range hold ip?
func cidrContains(prefix string, length uint32, ip string) bool {
	_, n, err := net.ParseCIDR(fmt.Sprintf("%s/%d", prefix, length))
	if err != nil {
		return false
	}
	p := net.ParseIP(ip)
	return p != nil && n.Contains(p)
}
