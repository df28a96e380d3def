package model

import "strings"

// Protocol is how mizzen treats traffic to a service port, chosen the way Istio
// chooses it: appProtocol first, then the port name prefix.
type Protocol string

const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTP2 Protocol = "HTTP2"
	ProtocolGRPC  Protocol = "GRPC"
	ProtocolHTTPS Protocol = "HTTPS"
	ProtocolTLS   Protocol = "TLS"
	ProtocolTCP   Protocol = "TCP"
	// ProtocolUnsupported: neither the port's name nor its appProtocol says
	// what it carries. As in istiod (sniffing on by default), such ports are
	// sniffed: Envoy's http_inspector sends HTTP through the port's route
	// table and everything else through TCP (IsSniffed).
	ProtocolUnsupported Protocol = "UnsupportedProtocol"
)

// IsHTTP reports whether Envoy should run an HTTP connection manager for the port.
func (p Protocol) IsHTTP() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC:
		return true
	}
	return false
}

// IsSniffed reports whether Envoy must detect the protocol per connection:
// HTTP/1.x and h2c go through an HTTP connection manager, anything else
// (including a client that sends nothing first) through a TCP proxy.
func (p Protocol) IsSniffed() bool { return p == ProtocolUnsupported }

// CarriesHTTP reports whether HTTP routing (VirtualService http rules) can
// apply on the port: a declared HTTP protocol, or a sniffed port's HTTP branch.
func (p Protocol) CarriesHTTP() bool { return p.IsHTTP() || p.IsSniffed() }

// IsTLS reports whether traffic on the port is TLS that Envoy passes through
// unterminated (routed by SNI).
func (p Protocol) IsTLS() bool { return p == ProtocolHTTPS || p == ProtocolTLS }

// IsHTTP2 reports whether upstream connections must speak HTTP/2.
func (p Protocol) IsHTTP2() bool { return p == ProtocolHTTP2 || p == ProtocolGRPC }

// ParseProtocol maps an Istio protocol name (Gateway server port protocol,
// ServiceEntry port protocol, appProtocol) to a Protocol; unknown names map to
// ProtocolUnsupported.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "http", "http1", "http/1.1":
		return ProtocolHTTP
	case "http2", "h2c", "kubernetes.io/h2c":
		return ProtocolHTTP2
	case "grpc", "grpc-web":
		return ProtocolGRPC
	case "https":
		return ProtocolHTTPS
	case "tls":
		return ProtocolTLS
	case "tcp", "mongo", "mysql", "redis":
		return ProtocolTCP
	}
	return ProtocolUnsupported
}

// PortProtocol picks the protocol of a Kubernetes service port: appProtocol wins,
// otherwise the port name's prefix before the first '-' ("http-web" is HTTP).
func PortProtocol(name string, appProtocol *string) Protocol {
	if appProtocol != nil && *appProtocol != "" {
		if p := ParseProtocol(*appProtocol); p != ProtocolUnsupported {
			return p
		}
	}
	prefix := name
	if i := strings.Index(name, "-"); i >= 0 {
		prefix = name[:i]
	}
	return ParseProtocol(prefix)
}
