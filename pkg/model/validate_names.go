package model

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Checks of names and values that end up verbatim in Envoy config: header
// names and values, domain names, subnets.

// headerName is an RFC 7230 token, the names Istio accepts.
var headerName = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~A-Za-z0-9]+$")

func validHeaderName(s string) bool { return headerName.MatchString(s) }

func isInternalHeader(name string) bool {
	return strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")
}

func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// headers checks a Headers block: request set/add may name Host or :authority
// (that becomes a host rewrite), no other pseudo-header may be touched, and
// values must be literal text or Envoy %VARIABLE% expressions Envoy knows.
func (v *validator) headers(field string, h *networkingapi.Headers) {
	if h == nil {
		return
	}
	ops := []struct {
		name          string
		kv            map[string]string
		authorityOK   bool
		removeList    []string
		isRemoveField bool
	}{
		{name: ".request.set", kv: h.GetRequest().GetSet(), authorityOK: true},
		{name: ".request.add", kv: h.GetRequest().GetAdd(), authorityOK: true},
		{name: ".request.remove", removeList: h.GetRequest().GetRemove(), isRemoveField: true},
		{name: ".response.set", kv: h.GetResponse().GetSet()},
		{name: ".response.add", kv: h.GetResponse().GetAdd()},
		{name: ".response.remove", removeList: h.GetResponse().GetRemove(), isRemoveField: true},
	}
	// set and add of one direction become one request_headers_to_add (or
	// response_headers_to_add) list.
	for _, d := range []struct {
		name string
		n    int
	}{
		{".request", len(h.GetRequest().GetSet()) + len(h.GetRequest().GetAdd())},
		{".response", len(h.GetResponse().GetSet()) + len(h.GetResponse().GetAdd())},
	} {
		if d.n > maxHeadersToAdd {
			v.fail(field+d.name, "TooManyHeaders", fmt.Sprintf("%d headers to set or add; Envoy accepts at most %d per route", d.n, maxHeadersToAdd))
		}
	}
	for _, op := range ops {
		if op.isRemoveField {
			for i, name := range op.removeList {
				v.headerName(fmt.Sprintf("%s%s[%d]", field, op.name, i), name, false)
			}
			continue
		}
		for _, name := range sortedKeys(op.kv) {
			f := fmt.Sprintf("%s%s[%s]", field, op.name, name)
			v.headerName(f, name, op.authorityOK)
			if err := checkHeaderValue(op.kv[name]); err != nil {
				v.fail(f, "InvalidHeaderValue", err.Error())
			} else if msg := headerValueLengthProblem(op.kv[name]); msg != "" {
				v.fail(f, "InvalidHeaderValue", msg)
			}
		}
	}
}

func (v *validator) headerName(field, name string, authorityOK bool) {
	switch {
	case name == "":
		v.fail(field, "InvalidHeaderName", "header name must not be empty")
	case authorityOK && isAuthorityHeader(name):
	case isInternalHeader(name):
		v.fail(field, "InvalidHeaderName", fmt.Sprintf("header %q cannot be modified (pseudo-header or Host)", name))
	case !validHeaderName(name):
		v.fail(field, "InvalidHeaderName", fmt.Sprintf("%q is not a valid header name", name))
	case len(name) > maxHeaderBytes:
		v.fail(field, "InvalidHeaderName", headerNameProblem(name))
	}
}

// authorityOnce: the Host may be rewritten in one place only (rewrite.authority
// or one Host/:authority header), as Istio requires.
func (v *validator) authorityOnce(base string, rw *networkingapi.HTTPRewrite, h *networkingapi.Headers) {
	current := rw.GetAuthority()
	for _, kv := range []map[string]string{h.GetRequest().GetSet(), h.GetRequest().GetAdd()} {
		for _, k := range sortedKeys(kv) {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				v.fail(base+".headers.request", "AuthorityRewriteConflict",
					fmt.Sprintf("the authority is rewritten twice: %q, then %q", current, kv[k]))
				return
			}
			current = kv[k]
		}
	}
}

// Envoy substitution commands a header value may use. Each was checked against
// Envoy 1.40: an unknown %NAME% makes Envoy reject the whole route table.
var (
	headerCommandsNoArgs = toSet(
		"REQUEST_HEADERS_BYTES", "RESPONSE_HEADERS_BYTES", "RESPONSE_TRAILERS_BYTES", "BYTES_RECEIVED", "BYTES_SENT",
		"BYTES_RETRANSMITTED", "PACKETS_RETRANSMITTED",
		"UPSTREAM_WIRE_BYTES_SENT", "UPSTREAM_WIRE_BYTES_RECEIVED", "UPSTREAM_HEADER_BYTES_SENT", "UPSTREAM_HEADER_BYTES_RECEIVED",
		"DOWNSTREAM_WIRE_BYTES_SENT", "DOWNSTREAM_WIRE_BYTES_RECEIVED", "DOWNSTREAM_HEADER_BYTES_SENT", "DOWNSTREAM_HEADER_BYTES_RECEIVED",
		"PROTOCOL", "UPSTREAM_PROTOCOL", "RESPONSE_CODE", "RESPONSE_CODE_DETAILS", "CONNECTION_TERMINATION_DETAILS",
		"DURATION", "REQUEST_DURATION", "REQUEST_TX_DURATION", "RESPONSE_DURATION", "RESPONSE_TX_DURATION",
		"DOWNSTREAM_HANDSHAKE_DURATION", "ROUNDTRIP_DURATION", "UPSTREAM_CONNECTION_POOL_READY_DURATION",
		"RESPONSE_FLAGS", "RESPONSE_FLAGS_LONG", "CUSTOM_FLAGS",
		"UPSTREAM_HOST", "UPSTREAM_HOST_NAME", "UPSTREAM_HOST_NAME_WITHOUT_PORT", "UPSTREAM_CLUSTER", "UPSTREAM_CLUSTER_RAW",
		"UPSTREAM_LOCAL_ADDRESS", "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "UPSTREAM_LOCAL_PORT",
		"UPSTREAM_REMOTE_ADDRESS", "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "UPSTREAM_REMOTE_PORT",
		"UPSTREAM_REQUEST_ATTEMPT_COUNT", "UPSTREAM_TLS_CIPHER", "UPSTREAM_TLS_VERSION", "UPSTREAM_TLS_SESSION_ID",
		"UPSTREAM_PEER_ISSUER", "UPSTREAM_PEER_CERT", "UPSTREAM_PEER_SUBJECT", "UPSTREAM_PEER_URI_SAN", "UPSTREAM_PEER_DNS_SAN",
		"UPSTREAM_PEER_IP_SAN", "UPSTREAM_LOCAL_URI_SAN", "UPSTREAM_LOCAL_DNS_SAN", "UPSTREAM_LOCAL_IP_SAN",
		"UPSTREAM_TRANSPORT_FAILURE_REASON", "UPSTREAM_CONNECTION_ID", "UPSTREAM_DETECTED_CLOSE_TYPE",
		"DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_LOCAL_PORT",
		"DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_REMOTE_PORT",
		"DOWNSTREAM_DIRECT_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_DIRECT_REMOTE_PORT",
		"DOWNSTREAM_DIRECT_LOCAL_ADDRESS", "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_DIRECT_LOCAL_PORT",
		"DOWNSTREAM_LOCAL_URI_SAN", "DOWNSTREAM_PEER_URI_SAN", "DOWNSTREAM_LOCAL_DNS_SAN", "DOWNSTREAM_PEER_DNS_SAN",
		"DOWNSTREAM_LOCAL_IP_SAN", "DOWNSTREAM_PEER_IP_SAN", "DOWNSTREAM_PEER_EMAIL_SAN", "DOWNSTREAM_PEER_OTHERNAME_SAN",
		"DOWNSTREAM_LOCAL_EMAIL_SAN", "DOWNSTREAM_LOCAL_OTHERNAME_SAN", "DOWNSTREAM_LOCAL_SUBJECT", "DOWNSTREAM_PEER_SUBJECT",
		"DOWNSTREAM_PEER_ISSUER", "DOWNSTREAM_TLS_SESSION_ID", "DOWNSTREAM_TLS_CIPHER", "DOWNSTREAM_TLS_VERSION",
		"DOWNSTREAM_PEER_FINGERPRINT_256", "DOWNSTREAM_PEER_FINGERPRINT_1", "DOWNSTREAM_PEER_SERIAL", "DOWNSTREAM_PEER_CERT",
		"DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256", "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1", "DOWNSTREAM_PEER_CHAIN_SERIALS",
		"DOWNSTREAM_TRANSPORT_FAILURE_REASON", "DOWNSTREAM_DETECTED_CLOSE_TYPE",
		"CONNECTION_ID", "REQUESTED_SERVER_NAME", "ROUTE_NAME", "VIRTUAL_CLUSTER_NAME", "HOSTNAME", "LOCAL_REPLY_BODY",
		"FILTER_CHAIN_NAME", "ACCESS_LOG_TYPE", "UNIQUE_ID", "STREAM_ID", "TRACE_ID", "PATH",
	)
	// Commands whose (...) argument is optional: a time format.
	headerCommandsOptionalArgs = toSet(
		"START_TIME", "START_TIME_LOCAL", "EMIT_TIME", "EMIT_TIME_LOCAL",
		"DOWNSTREAM_PEER_CERT_V_START", "DOWNSTREAM_PEER_CERT_V_END", "UPSTREAM_PEER_CERT_V_START", "UPSTREAM_PEER_CERT_V_END",
	)
	headerCommandsWithArgs = toSet(
		"REQ", "RESP", "TRAILER", "REQUEST_HEADER", "RESPONSE_HEADER", "RESPONSE_TRAILER", "QUERY_PARAM",
		"DYNAMIC_METADATA", "CLUSTER_METADATA", "UPSTREAM_METADATA", "METADATA", "FILTER_STATE", "UPSTREAM_FILTER_STATE",
		"PER_REQUEST_STATE", "ENVIRONMENT", "CEL", "COMMON_DURATION",
	)
	headerCommand = regexp.MustCompile(`^([A-Z_0-9]+)(\((.*)\))?(:[0-9]+)?$`)
)

func toSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkHeaderValue parses a header value the way Envoy does: "%%" is a literal
// percent, "%NAME%" / "%NAME(args)%" / "%NAME(args):len%" a substitution, any
// other "%" an error.
func checkHeaderValue(s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return fmt.Errorf("header value %q contains CR, LF or NUL", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			i++
			continue
		}
		end := commandEnd(s, i+1)
		if end < 0 {
			return fmt.Errorf("header value %q has an unterminated %%VARIABLE%% (write %%%% for a literal %%)", s)
		}
		if err := checkHeaderCommand(s[i+1 : end]); err != nil {
			return fmt.Errorf("header value %q: %v", s, err)
		}
		i = end
	}
	return nil
}

// commandEnd finds the '%' closing a command that starts at i, skipping '%'
// inside its (...) argument (time formats such as START_TIME(%s)).
func commandEnd(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case '%':
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func checkHeaderCommand(cmd string) error {
	m := headerCommand.FindStringSubmatch(cmd)
	if m == nil {
		return fmt.Errorf("%%%s%% is not a valid Envoy variable expression", cmd)
	}
	name, hasArgs, args := m[1], m[2] != "", m[3]
	switch {
	case headerCommandsWithArgs[name]:
		if strings.TrimSpace(args) == "" {
			return fmt.Errorf("%%%s%% needs an argument, as in %%%s(...)%%", name, name)
		}
	case headerCommandsOptionalArgs[name]:
	case headerCommandsNoArgs[name]:
		if hasArgs {
			return fmt.Errorf("%%%s%% takes no argument", name)
		}
	default:
		return fmt.Errorf("%%%s%% is not a variable Envoy knows (write %%%% for a literal %%)", name)
	}
	return nil
}

// validWildcardDomain: a DNS name, optionally starting with "*." (or just "*"),
// as Istio's ValidateWildcardDomain.
func validWildcardDomain(s string) bool {
	if s == "*" {
		return true
	}
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 255 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !dnsLabel.MatchString(strings.ToLower(label)) {
			return false
		}
	}
	return true
}

// validSubnet: an IP address or a CIDR.
func validSubnet(s string) bool {
	if strings.Contains(s, "/") {
		_, _, err := net.ParseCIDR(s)
		return err == nil
	}
	return net.ParseIP(s) != nil
}

// ObjectNameError says why Kubernetes would refuse an object of kind named
// namespace/name, or returns nil. The Kubernetes source never sees such an
// object (the apiserver refuses it); the file source must refuse it itself, or
// config that can never exist in a cluster would be served, with names that
// end up in Envoy resource names and SPIFFE IDs.
func ObjectNameError(kind, namespace, name string) error {
	check, rule := validation.IsDNS1123Subdomain, "DNS-1123 subdomain"
	switch kind {
	case "Namespace":
		check, rule = validation.IsDNS1123Label, "DNS-1123 label"
	case "Service":
		check, rule = validation.IsDNS1035Label, "DNS-1035 label"
	}
	if errs := check(name); len(errs) > 0 {
		return fmt.Errorf("metadata.name %q is not a valid %s name (a %s, as Kubernetes requires): %s",
			name, kind, rule, strings.Join(errs, "; "))
	}
	if kind == "Namespace" || namespace == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return fmt.Errorf("metadata.namespace %q is not a valid namespace name (a DNS-1123 label, as Kubernetes requires): %s",
			namespace, strings.Join(errs, "; "))
	}
	return nil
}
