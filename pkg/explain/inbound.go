package explain

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
)

// Inbound walks the destination proxy's virtualInbound for r arriving at
// port, over mTLS or not, and evaluates its RBAC filters (Istio's
// AuthorizationPolicies) in order: the first DENY match denies, an ALLOW
// filter without a match denies; AUDIT (LOG) only notes.
func Inbound(cfg *Config, t *Trace, r *Request, port int, mtls bool) {
	v := Verdict{Proxy: cfg.ProxyID}
	defer func() { t.addVerdict(v) }()
	var inbound = -1
	for i, l := range cfg.Listeners {
		if l.GetName() == "virtualInbound" {
			inbound = i
		}
	}
	if inbound < 0 {
		t.add("inbound", "no virtualInbound listener in "+cfg.ProxyID)
		return
	}
	transport := "raw_buffer"
	if mtls {
		transport = "tls"
	}
	fc, why := pickChain(cfg.Listeners[inbound], r.DestIP, port, transport, inboundALPN(t, r, mtls))
	if fc == nil {
		v.Decision = "DENIED"
		t.add("inbound chain", fmt.Sprintf("none for port %d over %s: the connection is closed (mTLS mode refuses it)", port, transport), why...)
		return
	}
	t.add("inbound chain", fmt.Sprintf("%s of %s", chainName(fc), cfg.ProxyID), why...)
	if alpn := fc.GetFilterChainMatch().GetApplicationProtocols(); len(alpn) > 0 && sniffs(cfg.Listeners[inbound]) {
		t.add("inbound protocol", "sniffed port: the "+inboundBranch(fc)+" branch", "chain matches application protocol "+strings.Join(alpn, "|"))
	}
	for _, f := range fc.GetFilters() {
		if nr := typed(f.GetTypedConfig(), &rbacnetv3.RBAC{}); nr != nil {
			if !evalRBAC(t, &v, nr.GetRules(), r, port, "network") {
				return
			}
			continue
		}
		if hcm := typed(f.GetTypedConfig(), &hcmv3.HttpConnectionManager{}); hcm != nil {
			for _, hf := range hcm.GetHttpFilters() {
				if hr := typed(hf.GetTypedConfig(), &rbachttpv3.RBAC{}); hr != nil {
					if !evalRBAC(t, &v, hr.GetRules(), r, port, "HTTP") {
						return
					}
				}
			}
		}
	}
	if v.Decision == "" {
		v.Decision = "ALLOWED"
	}
	t.add("authorization", v.Decision)
}

// evalRBAC applies one RBAC filter; false when it denies.
func evalRBAC(t *Trace, v *Verdict, rules *rbacconfigv3.RBAC, r *Request, port int, kind string) bool {
	if rules == nil {
		return true
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	var matched []string
	var why []string
	unknown := false
	for _, n := range names {
		res, reasons := policyMatch(rules.GetPolicies()[n], r, port)
		why = append(why, fmt.Sprintf("%s %s: %s", res, n, strings.Join(reasons, "; ")))
		switch res {
		case yes:
			matched = append(matched, n)
		case maybe:
			unknown = true
		}
	}
	action := rules.GetAction().String()
	switch action {
	case "DENY":
		if len(matched) > 0 {
			v.Decision, v.Policy = "DENIED", matched[0]
			t.add(kind+" RBAC DENY", "denied by "+matched[0]+": 403 RBAC: access denied", why...)
			return false
		}
		res := "no DENY policy matches"
		if unknown {
			res += " (some depend on what explain cannot see, e.g. JWT claims)"
		}
		t.add(kind+" RBAC DENY", res, why...)
	case "ALLOW":
		if len(matched) == 0 {
			v.Decision = "DENIED"
			v.Policy = "(no ALLOW policy matched)"
			res := "no ALLOW policy matches: 403 RBAC: access denied"
			if unknown {
				res += " (unless a policy explain cannot evaluate matches)"
			}
			t.add(kind+" RBAC ALLOW", res, why...)
			return false
		}
		v.Policy = matched[0]
		t.add(kind+" RBAC ALLOW", "allowed by "+matched[0], why...)
	default:
		res := "audit only"
		if len(matched) > 0 {
			res += ": logged by " + strings.Join(matched, ", ")
		}
		t.add(kind+" RBAC "+action, res, why...)
	}
	return true
}

type tri string

const (
	yes   tri = "✓"
	no    tri = "✗"
	maybe tri = "?"
)

func and(a, b tri) tri {
	switch {
	case a == no || b == no:
		return no
	case a == maybe || b == maybe:
		return maybe
	}
	return yes
}

func or(a, b tri) tri {
	switch {
	case a == yes || b == yes:
		return yes
	case a == maybe || b == maybe:
		return maybe
	}
	return no
}

func not(a tri) tri {
	switch a {
	case yes:
		return no
	case no:
		return yes
	}
	return maybe
}

func of(b bool) tri {
	if b {
		return yes
	}
	return no
}

func policyMatch(p *rbacconfigv3.Policy, r *Request, port int) (tri, []string) {
	var why []string
	perm := no
	for _, pm := range p.GetPermissions() {
		res := permission(pm, r, port, &why)
		perm = or(perm, res)
	}
	princ := no
	for _, pr := range p.GetPrincipals() {
		princ = or(princ, principal(pr, r, &why))
	}
	return and(perm, princ), why
}

func permission(p *rbacconfigv3.Permission, r *Request, port int, why *[]string) tri {
	switch rule := p.GetRule().(type) {
	case *rbacconfigv3.Permission_Any:
		return yes
	case *rbacconfigv3.Permission_AndRules:
		res := yes
		for _, x := range rule.AndRules.GetRules() {
			res = and(res, permission(x, r, port, why))
		}
		return res
	case *rbacconfigv3.Permission_OrRules:
		res := no
		for _, x := range rule.OrRules.GetRules() {
			res = or(res, permission(x, r, port, why))
		}
		return res
	case *rbacconfigv3.Permission_NotRule:
		return not(permission(rule.NotRule, r, port, why))
	case *rbacconfigv3.Permission_Header:
		ok, w := headerMatch(rule.Header, r)
		*why = append(*why, w)
		return of(ok)
	case *rbacconfigv3.Permission_UrlPath:
		path := r.Path()
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		ok, w := stringMatch(rule.UrlPath.GetPath(), path)
		*why = append(*why, fmt.Sprintf("path %s (request %q)", w, path))
		return of(ok)
	case *rbacconfigv3.Permission_UriTemplate:
		tmpl := typed(rule.UriTemplate.GetTypedConfig(), &uritemplatev3.UriTemplateMatchConfig{})
		if tmpl == nil {
			break
		}
		path, _, _ := strings.Cut(r.Path(), "?")
		ok := uriTemplateMatch(tmpl.GetPathTemplate(), path)
		*why = append(*why, fmt.Sprintf("%spath template %q (request %q)", mark(ok), tmpl.GetPathTemplate(), path))
		return of(ok)
	case *rbacconfigv3.Permission_DestinationPort:
		*why = append(*why, fmt.Sprintf("port %d (request %d)", rule.DestinationPort, port))
		return of(int(rule.DestinationPort) == port)
	case *rbacconfigv3.Permission_DestinationIp:
		return of(cidrContains(rule.DestinationIp.GetAddressPrefix(), rule.DestinationIp.GetPrefixLen().GetValue(), r.DestIP))
	}
	*why = append(*why, fmt.Sprintf("cannot evaluate permission %T", p.GetRule()))
	return maybe
}

func principal(p *rbacconfigv3.Principal, r *Request, why *[]string) tri {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfigv3.Principal_Any:
		return yes
	case *rbacconfigv3.Principal_AndIds:
		res := yes
		for _, x := range id.AndIds.GetIds() {
			res = and(res, principal(x, r, why))
		}
		return res
	case *rbacconfigv3.Principal_OrIds:
		res := no
		for _, x := range id.OrIds.GetIds() {
			res = or(res, principal(x, r, why))
		}
		return res
	case *rbacconfigv3.Principal_NotId:
		return not(principal(id.NotId, r, why))
	case *rbacconfigv3.Principal_Authenticated_:
		if r.SourcePrincipal == "" {
			*why = append(*why, "peer principal: none (no mTLS identity)")
			return no
		}
		ok, w := stringMatch(id.Authenticated.GetPrincipalName(), r.SourcePrincipal)
		*why = append(*why, fmt.Sprintf("peer principal %s (caller %q)", w, r.SourcePrincipal))
		return of(ok)
	case *rbacconfigv3.Principal_Header:
		ok, w := headerMatch(id.Header, r)
		*why = append(*why, w)
		return of(ok)
	case *rbacconfigv3.Principal_SourceIp:
		return of(cidrContains(id.SourceIp.GetAddressPrefix(), id.SourceIp.GetPrefixLen().GetValue(), r.SourceIP))
	case *rbacconfigv3.Principal_DirectRemoteIp:
		return of(cidrContains(id.DirectRemoteIp.GetAddressPrefix(), id.DirectRemoteIp.GetPrefixLen().GetValue(), r.SourceIP))
	case *rbacconfigv3.Principal_RemoteIp:
		return of(cidrContains(id.RemoteIp.GetAddressPrefix(), id.RemoteIp.GetPrefixLen().GetValue(), r.SourceIP))
	case *rbacconfigv3.Principal_Metadata:
		// request.auth.* (JWT claims) come from a validated token's payload.
		if _, ok := r.Headers["authorization"]; !ok {
			*why = append(*why, "request principal / JWT claim: the request carries no token")
			return no
		}
		*why = append(*why, "request principal / JWT claim (explain does not validate the token: unknown)")
		return maybe
	}
	*why = append(*why, fmt.Sprintf("cannot evaluate principal %T", p.GetIdentifier()))
	return maybe
}

// Verdict is one destination sidecar's authorization decision.
type Verdict struct {
	Proxy    string `json:"proxy"`
	Decision string `json:"decision"` // ALLOWED or DENIED
	Policy   string `json:"policy,omitempty"`
}

// addVerdict records a destination's decision; the trace's overall Decision is
// the common one, or MIXED when destinations (say, two versions with different
// policies) disagree.
func (t *Trace) addVerdict(v Verdict) {
	t.Verdicts = append(t.Verdicts, v)
	t.Decision, t.Policy = v.Decision, v.Policy
	for _, o := range t.Verdicts {
		if o.Decision != v.Decision || o.Policy != v.Policy {
			t.Decision, t.Policy = "MIXED", "depends on the destination: see verdicts"
			return
		}
	}
}

// uriTemplateMatch is Envoy's uri_template match for the templates mizzen
// writes: "*" is one non-empty segment, "**" (the last operator) any rest,
// slashes included, and everything else literal.
func uriTemplateMatch(tmpl, path string) bool {
	var b strings.Builder
	b.WriteString("^")
	for i, part := range strings.Split(tmpl, "**") {
		if i > 0 {
			b.WriteString(".*")
		}
		for j, seg := range strings.Split(part, "*") {
			if j > 0 {
				b.WriteString("[^/]+")
			}
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(path)
}

// inboundALPN is what the server side's inspectors see: over Istio mTLS the
// ALPNs the client sidecar offered (a sniffed port's HTTP branch says
// istio-http/1.1, other connections istio-peer-exchange and istio), in
// plaintext what the http_inspector detects.
func inboundALPN(t *Trace, r *Request, mtls bool) []string {
	switch {
	case mtls && t.Branch == "HTTP":
		return []string{"istio-http/1.1"}
	case mtls:
		return []string{"istio-peer-exchange", "istio"}
	case r.IsHTTP():
		return []string{r.DetectedProtocol()}
	}
	return nil
}

func inboundBranch(fc *listenerv3.FilterChain) string {
	for _, f := range fc.GetFilters() {
		if typed(f.GetTypedConfig(), &hcmv3.HttpConnectionManager{}) != nil {
			return "HTTP"
		}
	}
	return "TCP"
}
