package explain

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Request is the request to explain, as the calling app sends it.
type Request struct {
	Method  string
	URL     *url.URL
	Headers map[string]string // lower-case names
	// DestIP is the address the app connects to: the URL's host if it is an
	// IP, else what the host resolves to (a Service VIP), set by the caller.
	DestIP string
	// Source: who is calling (for the destination's policies).
	// SourcePrincipal is the caller's SPIFFE ID as its certificate's URI SAN
	// ("spiffe://cluster.local/ns/…"): Envoy's RBAC matches principal_name
	// against that, and Istio's policies, written without the scheme, are
	// translated with it.
	SourcePrincipal string
	SourceIP        string
}

// NewRequest parses "http://host[:port]/path?query" with method and headers.
func NewRequest(method, rawURL string, headers map[string]string) (*Request, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", rawURL, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("url %q: want scheme://host[:port]/path", rawURL)
	}
	if method == "" {
		method = "GET"
	}
	h := map[string]string{}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	r := &Request{Method: strings.ToUpper(method), URL: u, Headers: h}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		r.DestIP = ip.String()
	}
	return r, nil
}

// Port is the destination port (scheme default if the URL has none).
func (r *Request) Port() int {
	if p := r.URL.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	switch r.URL.Scheme {
	case "https":
		return 443
	default:
		return 80
	}
}

// Authority is the Host header Envoy matches virtual hosts against.
func (r *Request) Authority() string {
	if h, ok := r.Headers["host"]; ok {
		return h
	}
	return r.URL.Host
}

// Path is the :path (path and query).
func (r *Request) Path() string {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p
}

// header returns a request header as Envoy sees it, pseudo-headers included.
func (r *Request) header(name string) (string, bool) {
	switch name {
	case ":path":
		return r.Path(), true
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return r.Authority(), true
	case ":scheme":
		return r.URL.Scheme, true
	}
	v, ok := r.Headers[strings.ToLower(name)]
	return v, ok
}

// PeerPrincipal is the principal Envoy sees for a caller with this SPIFFE ID
// (with or without its scheme): the certificate's URI SAN.
func PeerPrincipal(id string) string {
	if id == "" || strings.HasPrefix(id, "spiffe://") {
		return id
	}
	return "spiffe://" + id
}

// DetectedProtocol is what Envoy's http_inspector reports for the request's
// first bytes: "http/1.1" for http://, "h2c" for h2c:// and grpc:// (HTTP/2
// with prior knowledge), "" for anything it does not take for HTTP (tcp://,
// https://: the app's own TLS).
func (r *Request) DetectedProtocol() string {
	switch r.URL.Scheme {
	case "http":
		return "http/1.1"
	case "h2c", "grpc":
		return "h2c"
	}
	return ""
}

// IsHTTP reports whether the request is HTTP the sidecar can see (not TLS,
// not raw TCP).
func (r *Request) IsHTTP() bool { return r.DetectedProtocol() != "" }
