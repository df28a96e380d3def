package model

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// ValidateVirtualService returns the problems of one VirtualService on its own,
// following istiod's validation webhook. Where Istio would accept something
// Envoy then rejects (a redirect code Envoy has no name for, an abort status of
// 600, an unknown %VARIABLE% in a header value), mizzen refuses it here: a
// NACK would take down every route on the port, not just this object.
func ValidateVirtualService(vs *networking.VirtualService) []ConfigError {
	v := validator{kind: "VirtualService", ns: vs.Namespace, name: vs.Name}
	spec := &vs.Spec
	delegate := len(spec.GetHosts()) == 0
	if delegate {
		// A VirtualService without hosts is a delegate: only reachable through a
		// root's http[].delegate, so it may hold http routes only.
		if len(spec.GetGateways()) > 0 {
			v.fail("spec.gateways", "InvalidDelegate", "a delegate VirtualService (no hosts) must not name gateways; the root's apply")
		}
		if len(spec.GetTcp()) > 0 || len(spec.GetTls()) > 0 {
			v.fail("spec", "InvalidDelegate", "a delegate VirtualService (no hosts) may only have http routes")
		}
		if len(spec.GetHttp()) == 0 {
			v.fail("spec.http", "MissingRoutes", "a delegate VirtualService (no hosts) needs http routes")
		}
	} else if len(spec.GetHttp()) == 0 && len(spec.GetTcp()) == 0 && len(spec.GetTls()) == 0 {
		v.fail("spec", "MissingRoutes", "http, tcp or tls must be provided")
	}
	meshBound := len(spec.GetGateways()) == 0
	for _, g := range spec.GetGateways() {
		meshBound = meshBound || g == "mesh"
	}
	for i, h := range spec.GetHosts() {
		switch {
		case h == "":
			v.fail(fmt.Sprintf("spec.hosts[%d]", i), "InvalidHost", "host must not be empty")
		case h == "*" && meshBound:
			v.fail(fmt.Sprintf("spec.hosts[%d]", i), "InvalidHost", `host "*" is not allowed for VirtualServices bound to the mesh`)
		}
	}
	for i, r := range spec.GetHttp() {
		v.httpRoute(fmt.Sprintf("spec.http[%d]", i), r, delegate)
	}
	for i, r := range spec.GetTcp() {
		v.tcpRoute(fmt.Sprintf("spec.tcp[%d]", i), r)
	}
	for i, r := range spec.GetTls() {
		v.tlsRoute(fmt.Sprintf("spec.tls[%d]", i), r, spec.GetHosts())
	}
	return v.errs
}

func (v *validator) httpRoute(base string, r *networkingapi.HTTPRoute, inDelegate bool) {
	root := r.GetDelegate() != nil
	switch {
	case root && inDelegate:
		v.fail(base+".delegate", "InvalidDelegate", "a delegate VirtualService's routes cannot delegate again (one level only)")
	case root:
		if len(r.GetRoute()) > 0 || r.GetRedirect() != nil || r.GetDirectResponse() != nil {
			v.fail(base+".delegate", "DelegateWithRoute", "a route with delegate must not set route, redirect or directResponse")
		}
		if r.GetDelegate().GetName() == "" {
			v.fail(base+".delegate.name", "InvalidDelegate", "delegate name is required")
		}
	default:
		actions := 0
		for _, set := range []bool{len(r.GetRoute()) > 0, r.GetRedirect() != nil, r.GetDirectResponse() != nil} {
			if set {
				actions++
			}
		}
		switch {
		case actions == 0:
			v.fail(base+".route", "MissingDestination", "an HTTP route needs route, redirect, directResponse or delegate")
		case r.GetRedirect() != nil && len(r.GetRoute()) > 0:
			v.fail(base+".redirect", "RedirectWithRoute", "redirect and route are mutually exclusive")
		case actions > 1:
			v.fail(base+".directResponse", "DirectResponseWithRoute", "directResponse excludes route and redirect")
		}
		if r.GetRedirect() != nil && r.GetFault() != nil {
			v.fail(base+".fault", "FaultWithRedirect", "a redirect route cannot inject faults")
		}
		if r.GetRedirect() != nil && r.GetRewrite() != nil {
			v.fail(base+".rewrite", "RewriteWithRedirect", "redirect and rewrite are mutually exclusive")
		}
	}
	for j, m := range r.GetMatch() {
		v.httpMatch(fmt.Sprintf("%s.match[%d]", base, j), m, root || inDelegate)
	}
	v.headers(base+".headers", r.GetHeaders())
	v.authorityOnce(base, r.GetRewrite(), r.GetHeaders())
	v.destinations(base+".route", httpDests(r.GetRoute()))
	for j, d := range r.GetRoute() {
		v.headers(fmt.Sprintf("%s.route[%d].headers", base, j), d.GetHeaders())
	}
	v.fault(base+".fault", r.GetFault())
	v.mirrors(base, r)
	v.cors(base+".corsPolicy", r.GetCorsPolicy())
	v.retries(base+".retries", r.GetRetries())
	v.redirect(base+".redirect", r.GetRedirect())
	v.rewrite(base+".rewrite", r.GetRewrite())
	v.directResponse(base+".directResponse", r.GetDirectResponse())
}

func (v *validator) httpMatch(mb string, m *networkingapi.HTTPMatchRequest, delegation bool) {
	if m == nil {
		return
	}
	sms := map[string]*networkingapi.StringMatch{".uri": m.GetUri(), ".method": m.GetMethod(), ".authority": m.GetAuthority(), ".scheme": m.GetScheme()}
	kinds := map[string]matchKind{".uri": matchPath, ".method": matchHeader, ".authority": matchHeader, ".scheme": matchHeader}
	for _, hs := range []struct {
		name string
		m    map[string]*networkingapi.StringMatch
	}{{"headers", m.GetHeaders()}, {"withoutHeaders", m.GetWithoutHeaders()}} {
		for _, k := range sortedKeys(hs.m) {
			f := fmt.Sprintf(".%s[%s]", hs.name, k)
			sms[f], kinds[f] = hs.m[k], matchHeader
			if msg := headerNameProblem(k); msg != "" {
				v.fail(mb+f, "InvalidHeaderName", msg)
			}
		}
	}
	for _, k := range sortedKeys(m.GetQueryParams()) {
		qp := m.GetQueryParams()[k]
		f := fmt.Sprintf(".queryParams[%s]", k)
		if _, ok := qp.GetMatchType().(*networkingapi.StringMatch_Prefix); ok {
			v.fail(mb+f+".prefix", "UnsupportedMatch", "queryParams support exact and regex only")
		}
		if k == "" || len(k) > maxQueryParamNameBytes {
			v.fail(mb+f, "InvalidQueryParam", fmt.Sprintf("a query parameter name is 1-%d bytes in Envoy (this one: %d)", maxQueryParamNameBytes, len(k)))
		}
		sms[f], kinds[f] = qp, matchOther
	}
	for _, k := range sortedKeys(sms) {
		v.stringMatch(mb+k, sms[k], kinds[k])
		if _, isRegex := sms[k].GetMatchType().(*networkingapi.StringMatch_Regex); isRegex && delegation {
			v.fail(mb+k+".regex", "RegexInDelegation", "routes that delegate, and delegate VirtualServices, cannot match by regex (Istio cannot intersect regexes)")
		}
	}
	if m.GetPort() > 65535 {
		v.fail(mb+".port", "InvalidPort", "port must be 1-65535")
	}
	if ns := m.GetSourceNamespace(); ns != "" && !isDNSLabel(ns) {
		v.fail(mb+".sourceNamespace", "InvalidNamespace", fmt.Sprintf("%q is not a valid namespace name", ns))
	}
}

// percentage: Istio's rule for Percent: 0, or 0.0001-100.
func (v *validator) percentage(field string, p *networkingapi.Percent) {
	if p == nil {
		return
	}
	if x := p.GetValue(); x < 0 || x > 100 || (x > 0 && x < 0.0001) {
		v.fail(field+".value", "InvalidPercentage", fmt.Sprintf("percentage %v is neither 0 nor in 0.0001-100", x))
	}
}

func (v *validator) fault(field string, f *networkingapi.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.GetDelay() == nil && f.GetAbort() == nil {
		v.fail(field, "InvalidFault", "fault needs an abort and/or a delay")
	}
	if d := f.GetDelay(); d != nil {
		df := field + ".delay"
		v.percentage(df+".percentage", d.GetPercentage())
		if p := d.GetPercent(); p != 0 { //nolint:staticcheck // validating the deprecated field
			if p < 0 || p > 100 {
				v.fail(df+".percent", "InvalidPercentage", fmt.Sprintf("percent %d is not in 0-100", p))
			}
			if d.GetPercentage() == nil {
				v.warn(df+".percent", "DeprecatedField", `"percent" is deprecated, use "percentage"`)
			}
		}
		switch t := d.GetHttpDelayType().(type) {
		case *networkingapi.HTTPFaultInjection_Delay_FixedDelay:
			v.duration(df+".fixedDelay", t.FixedDelay)
		case *networkingapi.HTTPFaultInjection_Delay_ExponentialDelay:
			v.fail(df+".exponentialDelay", "UnsupportedField", "exponentialDelay is not supported (nor by Istio)")
		default:
			v.warn(df+".fixedDelay", "FaultNeverInjected", "delay without fixedDelay delays nothing")
		}
		if d.GetPercentage() == nil && d.GetPercent() == 0 { //nolint:staticcheck // validating the deprecated field
			v.warn(df+".percentage", "FaultNeverInjected", "delay without percentage delays no request")
		}
	}
	if a := f.GetAbort(); a != nil {
		af := field + ".abort"
		v.percentage(af+".percentage", a.GetPercentage())
		switch t := a.GetErrorType().(type) {
		case *networkingapi.HTTPFaultInjection_Abort_HttpStatus:
			// Envoy takes 200-599 only (Istio's webhook lets 600 through to a NACK).
			if t.HttpStatus < 200 || t.HttpStatus > 599 {
				v.fail(af+".httpStatus", "InvalidStatus", fmt.Sprintf("HTTP status %d is not in 200-599", t.HttpStatus))
			}
		case *networkingapi.HTTPFaultInjection_Abort_GrpcStatus:
			if _, ok := GRPCStatusCode(t.GrpcStatus); !ok {
				v.fail(af+".grpcStatus", "InvalidStatus", fmt.Sprintf("gRPC status %q is not a status name such as UNAVAILABLE or NOT_FOUND", t.GrpcStatus))
			}
		case *networkingapi.HTTPFaultInjection_Abort_Http2Error:
			v.fail(af+".http2Error", "UnsupportedField", "http2Error aborts are not supported (nor by Istio)")
		default:
			v.warn(af, "FaultNeverInjected", "abort without httpStatus or grpcStatus aborts nothing")
		}
		if a.GetPercentage() == nil {
			v.warn(af+".percentage", "FaultNeverInjected", "abort without percentage aborts no request")
		}
	}
}

func (v *validator) mirrors(base string, r *networkingapi.HTTPRoute) {
	if m := r.GetMirror(); m != nil {
		v.destination(base+".mirror", m)
	}
	if p := r.GetMirrorPercent(); p != nil { //nolint:staticcheck // validating the deprecated field
		if p.GetValue() > 100 {
			v.fail(base+".mirrorPercent", "InvalidPercentage", fmt.Sprintf("mirrorPercent %d is over 100", p.GetValue()))
		}
		v.warn(base+".mirrorPercent", "DeprecatedField", `"mirrorPercent" is deprecated, use "mirrorPercentage"`)
	}
	if p := r.GetMirrorPercentage(); p != nil && (p.GetValue() < 0 || p.GetValue() > 100) {
		v.fail(base+".mirrorPercentage.value", "InvalidPercentage", fmt.Sprintf("mirrorPercentage %v is not in 0-100", p.GetValue()))
	}
	if r.GetMirror() == nil && (r.GetMirrorPercentage() != nil || r.GetMirrorPercent() != nil) { //nolint:staticcheck // validating the deprecated field
		v.warn(base+".mirrorPercentage", "IneffectiveField", "mirrorPercentage applies to mirror, which is not set")
	}
	for i, m := range r.GetMirrors() {
		f := fmt.Sprintf("%s.mirrors[%d]", base, i)
		if m.GetDestination() == nil {
			v.fail(f+".destination", "MissingDestination", "a mirror needs a destination")
			continue
		}
		v.destination(f+".destination", m.GetDestination())
		if p := m.GetPercentage(); p != nil && (p.GetValue() < 0 || p.GetValue() > 100) {
			v.fail(f+".percentage.value", "InvalidPercentage", fmt.Sprintf("percentage %v is not in 0-100", p.GetValue()))
		}
	}
}

// corsMethods are the methods Istio accepts in allowMethods.
var corsMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

func (v *validator) cors(field string, c *networkingapi.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.GetAllowOrigins() {
		f := fmt.Sprintf("%s.allowOrigins[%d]", field, i)
		var pattern string
		switch t := o.GetMatchType().(type) {
		case *networkingapi.StringMatch_Exact:
			pattern = t.Exact
		case *networkingapi.StringMatch_Prefix:
			pattern = t.Prefix
		case *networkingapi.StringMatch_Regex:
			pattern = t.Regex
		}
		if pattern == "" {
			v.fail(f, "InvalidCorsOrigin", "an origin match needs a non-empty exact, prefix or regex")
			continue
		}
		v.stringMatch(f, o, matchOther)
	}
	if len(c.GetAllowOrigin()) > 0 { //nolint:staticcheck // validating the deprecated field
		v.warn(field+".allowOrigin", "DeprecatedField", `"allowOrigin" is deprecated, use "allowOrigins"`)
	}
	for i, m := range c.GetAllowMethods() {
		if !corsMethods[m] {
			v.fail(fmt.Sprintf("%s.allowMethods[%d]", field, i), "InvalidMethod", fmt.Sprintf("%q is not an HTTP method (upper case, e.g. GET)", m))
		}
	}
	for i, h := range c.GetAllowHeaders() {
		if h != "*" && !validHeaderName(h) {
			v.fail(fmt.Sprintf("%s.allowHeaders[%d]", field, i), "InvalidHeaderName", fmt.Sprintf("%q is not a valid header name", h))
		}
	}
	for i, h := range c.GetExposeHeaders() {
		if h != "*" && !validHeaderName(h) {
			v.fail(fmt.Sprintf("%s.exposeHeaders[%d]", field, i), "InvalidHeaderName", fmt.Sprintf("%q is not a valid header name", h))
		}
	}
	if a := c.GetMaxAge(); a != nil {
		v.duration(field+".maxAge", a)
		if a.GetNanos() != 0 {
			v.fail(field+".maxAge", "InvalidDuration", "maxAge is sent in whole seconds")
		}
	}
}

// retryOnPolicies are the retryOn conditions Istio accepts: Envoy's
// x-envoy-retry-on and x-envoy-retry-grpc-on values.
var retryOnPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true, "retriable-headers": true,
	"envoy-ratelimited": true, "http3-post-connect-failure": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true,
}

func (v *validator) retries(field string, r *networkingapi.HTTPRetry) {
	if r == nil {
		return
	}
	if r.GetAttempts() < 0 {
		v.fail(field+".attempts", "InvalidRetries", "attempts must not be negative")
	}
	if r.GetAttempts() == 0 && (r.GetPerTryTimeout() != nil || r.GetRetryOn() != "" || r.GetRetryRemoteLocalities() != nil) {
		v.fail(field+".attempts", "InvalidRetries", "retry settings given while attempts is 0 (retries disabled)")
	}
	v.duration(field+".perTryTimeout", r.GetPerTryTimeout())
	v.duration(field+".backoff", r.GetBackoff())
	if r.GetRetryOn() != "" {
		// As in Istio, parts are taken as written: " reset" is not "reset".
		for _, part := range strings.Split(r.GetRetryOn(), ",") {
			if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
				continue
			}
			if !retryOnPolicies[part] {
				v.fail(field+".retryOn", "InvalidRetryOn", fmt.Sprintf("%q is neither a retry condition (5xx, gateway-error, reset, connect-failure, "+
					"retriable-4xx, refused-stream, retriable-status-codes, cancelled, unavailable, ...) nor an HTTP status code", part))
			}
		}
	}
}

func (v *validator) redirect(field string, rd *networkingapi.HTTPRedirect) {
	if rd == nil {
		return
	}
	if rd.GetUri() == "" && rd.GetAuthority() == "" && rd.GetRedirectPort() == nil && rd.GetScheme() == "" && rd.GetPrefixRewrite() == "" {
		v.fail(field, "InvalidRedirect", "redirect must set uri, prefixRewrite, authority, scheme or port")
	}
	if rd.GetUri() != "" && rd.GetPrefixRewrite() != "" {
		v.fail(field+".prefixRewrite", "InvalidRedirect", "uri and prefixRewrite are mutually exclusive")
	}
	switch rd.GetRedirectCode() {
	case 0, 301, 302, 303, 307, 308:
	default:
		// Istio accepts any 3xx but emits a route without action for the others,
		// which Envoy rejects.
		v.fail(field+".redirectCode", "InvalidRedirect", fmt.Sprintf("redirect code %d is not one of 301, 302, 303, 307, 308", rd.GetRedirectCode()))
	}
	if s := rd.GetScheme(); s != "" && s != "http" && s != "https" {
		v.fail(field+".scheme", "InvalidRedirect", `scheme must be "http" or "https"`)
	}
	if p, ok := rd.GetRedirectPort().(*networkingapi.HTTPRedirect_Port); ok && (p.Port == 0 || p.Port > 65535) {
		v.fail(field+".port", "InvalidPort", "port must be 1-65535")
	}
}

func (v *validator) rewrite(field string, rw *networkingapi.HTTPRewrite) {
	if rw == nil {
		return
	}
	re := rw.GetUriRegexRewrite()
	if rw.GetUri() != "" && re != nil {
		v.fail(field+".uriRegexRewrite", "InvalidRewrite", "uri and uriRegexRewrite are mutually exclusive")
	}
	if rw.GetUri() == "" && re == nil && rw.GetAuthority() == "" {
		v.fail(field, "InvalidRewrite", "rewrite must set uri, uriRegexRewrite or authority")
	}
	if re != nil {
		if re.GetMatch() == "" || re.GetRewrite() == "" {
			v.fail(field+".uriRegexRewrite", "InvalidRewrite", "uriRegexRewrite needs both match and rewrite")
		} else {
			v.regex(field+".uriRegexRewrite.match", re.GetMatch())
		}
	}
}

const (
	maxDirectResponseBody  = 1 << 20
	warnDirectResponseBody = 100 << 10
)

func (v *validator) directResponse(field string, dr *networkingapi.HTTPDirectResponse) {
	if dr == nil {
		return
	}
	if dr.GetStatus() < 200 || dr.GetStatus() > 599 {
		v.fail(field+".status", "InvalidStatus", fmt.Sprintf("HTTP status %d is not in 200-599", dr.GetStatus()))
	}
	size := len(dr.GetBody().GetString_()) + len(dr.GetBody().GetBytes())
	switch {
	case size > maxDirectResponseBody:
		v.fail(field+".body", "BodyTooLarge", "direct response bodies are limited to 1 MiB")
	case size > warnDirectResponseBody:
		v.warn(field+".body", "BodyTooLarge", "a large direct response body is sent to every proxy")
	}
}

func (v *validator) tcpRoute(base string, r *networkingapi.TCPRoute) {
	for j, m := range r.GetMatch() {
		mb := fmt.Sprintf("%s.match[%d]", base, j)
		v.l4Match(mb, m.GetPort(), m.GetDestinationSubnets(), m.GetSourceNamespace())
		if m.GetSourceSubnet() != "" { //nolint:staticcheck // hidden field Istio ignores too
			v.warn(mb+".sourceSubnet", "UnsupportedField", "sourceSubnet is ignored (as in Istio)")
		}
	}
	if len(r.GetRoute()) == 0 {
		v.fail(base+".route", "MissingDestination", "a TCP route needs a destination")
	}
	v.destinations(base+".route", routeDests(r.GetRoute()))
}

func (v *validator) tlsRoute(base string, r *networkingapi.TLSRoute, hosts []string) {
	if len(r.GetMatch()) == 0 {
		v.fail(base+".match", "MissingMatch", "a TLS route needs at least one match (with sniHosts)")
	}
	for j, m := range r.GetMatch() {
		mb := fmt.Sprintf("%s.match[%d]", base, j)
		if len(m.GetSniHosts()) == 0 {
			v.fail(mb+".sniHosts", "MissingSNI", "a TLS match needs at least one SNI host")
		}
		for k, sni := range m.GetSniHosts() {
			f := fmt.Sprintf("%s.sniHosts[%d]", mb, k)
			if !validWildcardDomain(sni) {
				if IsIP(sni) {
					v.warn(f, "InvalidSNI", fmt.Sprintf("%q is an IP address: SNI carries names, most clients never send an IP", sni))
				} else {
					v.fail(f, "InvalidSNI", fmt.Sprintf("%q is not a valid (wildcard) domain name", sni))
				}
				continue
			}
			if !sniWithinHosts(sni, hosts) {
				v.fail(f, "InvalidSNI", fmt.Sprintf("SNI host %q is not within the VirtualService hosts [%s]", sni, strings.Join(hosts, ", ")))
			}
		}
		v.l4Match(mb, m.GetPort(), m.GetDestinationSubnets(), m.GetSourceNamespace())
	}
	if len(r.GetRoute()) == 0 {
		v.fail(base+".route", "MissingDestination", "a TLS route needs a destination")
	}
	v.destinations(base+".route", routeDests(r.GetRoute()))
}

func (v *validator) l4Match(mb string, port uint32, subnets []string, sourceNS string) {
	if port > 65535 {
		v.fail(mb+".port", "InvalidPort", "port must be 1-65535")
	}
	for k, s := range subnets {
		if !validSubnet(s) {
			v.fail(fmt.Sprintf("%s.destinationSubnets[%d]", mb, k), "InvalidSubnet", fmt.Sprintf("%q is neither an IP address nor a CIDR", s))
		}
	}
	if sourceNS != "" && !isDNSLabel(sourceNS) {
		v.fail(mb+".sourceNamespace", "InvalidNamespace", fmt.Sprintf("%q is not a valid namespace name", sourceNS))
	}
}

// sniWithinHosts: an SNI host must fall inside one of the VirtualService's
// hosts (Istio's host.Name.SubsetOf).
func sniWithinHosts(sni string, hosts []string) bool {
	for _, h := range hosts {
		switch {
		case h == "*" || strings.EqualFold(sni, h):
			return true
		case strings.HasPrefix(h, "*") && strings.HasSuffix(strings.ToLower(sni), strings.ToLower(h[1:])):
			return true
		}
	}
	return false
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func isDNSLabel(s string) bool { return dnsLabel.MatchString(s) }
