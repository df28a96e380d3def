package model

import (
	"fmt"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// GatewayServerKind is how a gateway serves one Gateway server, decided from
// the port protocol and tls.mode the way istiod decides it: an HTTP protocol
// wins over any tls settings (but httpsRedirect), a passthrough mode over the
// protocol, and every other tls mode terminates TLS with HTTP or TCP inside.
type GatewayServerKind int

const (
	ServerUnsupported GatewayServerKind = iota
	// ServerHTTP: plain HTTP, one HTTP connection manager per port, RDS http.<port>.
	ServerHTTP
	// ServerHTTPS: TLS terminated, HTTP inside; a filter chain per server
	// (matched by SNI) with RDS https.<port>.<portName>.<gateway>.<ns>.
	ServerHTTPS
	// ServerTLSTerminated: TLS terminated, TCP inside (protocol TLS or TCP
	// with tls SIMPLE/MUTUAL/...): VirtualService tcp routes.
	ServerTLSTerminated
	// ServerPassthrough: TLS passed through untouched, routed by SNI with
	// VirtualService tls routes.
	ServerPassthrough
	// ServerAutoPassthrough: mTLS passed through to the cluster its SNI
	// names (outbound_.<port>_.<subset>_.<host>), no VirtualService.
	ServerAutoPassthrough
	// ServerTCP: opaque TCP, VirtualService tcp routes.
	ServerTCP
)

func (k GatewayServerKind) String() string {
	switch k {
	case ServerHTTP:
		return "HTTP"
	case ServerHTTPS:
		return "HTTPS"
	case ServerTLSTerminated:
		return "TLS (terminated)"
	case ServerPassthrough:
		return "TLS PASSTHROUGH"
	case ServerAutoPassthrough:
		return "TLS AUTO_PASSTHROUGH"
	case ServerTCP:
		return "TCP"
	}
	return "unsupported"
}

// SNIRouted: servers of these kinds share a port, told apart by the SNI of
// the connection (tls_inspector), as istiod merges TLS servers.
func (k GatewayServerKind) SNIRouted() bool {
	return k == ServerHTTPS || k == ServerTLSTerminated || k == ServerPassthrough || k == ServerAutoPassthrough
}

// Terminates: the gateway holds a certificate for the server.
func (k GatewayServerKind) Terminates() bool { return k == ServerHTTPS || k == ServerTLSTerminated }

// ServerKind classifies a Gateway server; ServerUnsupported for one mizzen
// cannot serve (ValidateGateway says why).
func ServerKind(s *networkingapi.Server) GatewayServerKind {
	p := ParseProtocol(s.GetPort().GetProtocol())
	if p.IsHTTP() {
		return ServerHTTP
	}
	mode := s.GetTls().GetMode()
	if s.GetTls() != nil {
		switch mode {
		case networkingapi.ServerTLSSettings_PASSTHROUGH:
			if p.IsTLS() {
				return ServerPassthrough
			}
			return ServerUnsupported
		case networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH:
			if p == ProtocolTLS {
				return ServerAutoPassthrough
			}
			return ServerUnsupported
		}
	}
	switch {
	case p == ProtocolHTTPS && s.GetTls() != nil:
		return ServerHTTPS
	case (p == ProtocolTLS || p == ProtocolTCP) && s.GetTls() != nil:
		return ServerTLSTerminated
	case p == ProtocolTCP:
		return ServerTCP
	}
	return ServerUnsupported
}

// ServerCredentialNames are the Secrets a terminating server's certificates
// come from: tls.credentialNames (an RSA and an ECDSA one, say), else
// tls.credentialName; none for file-mounted certificates or ISTIO_MUTUAL.
func ServerCredentialNames(t *networkingapi.ServerTLSSettings) []string {
	if t.GetMode() == networkingapi.ServerTLSSettings_ISTIO_MUTUAL {
		return nil
	}
	if len(t.GetCredentialNames()) > 0 {
		return t.GetCredentialNames()
	}
	if t.GetCredentialName() != "" {
		return []string{t.GetCredentialName()}
	}
	return nil
}

// ValidatesClient: the server asks for (MUTUAL, ISTIO_MUTUAL: requires) a
// client certificate and checks it against a CA.
func ValidatesClient(mode networkingapi.ServerTLSSettings_TLSmode) bool {
	return mode == networkingapi.ServerTLSSettings_MUTUAL || mode == networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL ||
		mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL
}

// UnixBind: a server bound to a Unix domain socket, which mizzen does not serve.
func UnixBind(bind string) bool { return strings.HasPrefix(bind, "unix://") }

// gatewayServer reports what of one server mizzen cannot serve or does not
// apply, each message saying what happens instead, and whether the server is
// served. A server mizzen skips is a warning on the Gateway: the rest of the
// Gateway applies.
func (v *validator) gatewayServer(f string, s *networkingapi.Server) (servable bool) {
	skip := func(field, code, msg string) { v.warn(field, code, msg); servable = false }
	servable = true
	kind := ServerKind(s)
	t := s.GetTls()
	proto := strings.ToUpper(s.GetPort().GetProtocol())
	if kind == ServerUnsupported {
		switch {
		case t != nil && t.GetMode() == networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH:
			skip(f+".tls.mode", "UnsupportedTLSMode", fmt.Sprintf("AUTO_PASSTHROUGH needs port protocol TLS, not %s (as istiod); server skipped", proto))
		case t != nil && t.GetMode() == networkingapi.ServerTLSSettings_PASSTHROUGH:
			skip(f+".tls.mode", "UnsupportedTLSMode", fmt.Sprintf("PASSTHROUGH needs port protocol HTTPS or TLS, not %s; server skipped", proto))
		case (proto == "HTTPS" || proto == "TLS") && t == nil:
			skip(f+".tls", "MissingTLS", fmt.Sprintf("a server of protocol %s needs tls settings (mode and certificate); server skipped", proto))
		default:
			skip(f+".port.protocol", "UnsupportedProtocol", fmt.Sprintf("gateway servers of protocol %q are not served by mizzen (HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, MONGO, MYSQL, REDIS are); server skipped", s.GetPort().GetProtocol()))
		}
		return servable
	}
	if UnixBind(s.GetBind()) {
		skip(f+".bind", "UnsupportedBind", fmt.Sprintf("bind %q: Unix domain socket listeners are not served by mizzen; server skipped", s.GetBind()))
	}
	if kind == ServerHTTP || t == nil {
		if t != nil && (t.GetMode() != networkingapi.ServerTLSSettings_PASSTHROUGH || t.GetCredentialName() != "" ||
			len(t.GetCredentialNames()) > 0 || t.GetServerCertificate() != "") {
			v.warn(f+".tls", "IgnoredField", fmt.Sprintf("a server of protocol %s does not terminate TLS: tls settings other than httpsRedirect are ignored (as by istiod); use protocol HTTPS", proto))
		}
		return servable
	}
	if t.GetHttpsRedirect() {
		v.warn(f+".tls.httpsRedirect", "IgnoredField", "httpsRedirect applies to plain-HTTP servers only; ignored")
	}
	if !kind.Terminates() {
		if t.GetCredentialName() != "" || len(t.GetCredentialNames()) > 0 || t.GetServerCertificate() != "" {
			v.warn(f+".tls", "IgnoredField", fmt.Sprintf("%s does not terminate TLS: its certificate settings are ignored", t.GetMode()))
		}
		return servable
	}
	if t.GetCaCrl() != "" {
		v.warn(f+".tls.caCrl", "UnsupportedField", "caCrl is not applied by mizzen: revoked client certificates are accepted")
	}
	if len(t.GetTlsCertificates()) > 0 {
		v.warn(f+".tls.tlsCertificates", "UnsupportedField", "tlsCertificates is not applied by mizzen: use credentialNames, or serverCertificate/privateKey")
	}
	if t.GetCaCertCredentialName() != "" {
		v.warn(f+".tls.caCertCredentialName", "UnsupportedField", "caCertCredentialName is not applied by mizzen: the CA comes from the credential's ca.crt or its <name>-cacert Secret")
	}
	if t.GetInsecureSkipVerify().GetValue() {
		v.warn(f+".tls.insecureSkipVerify", "UnsupportedField", "insecureSkipVerify is not applied by mizzen: client certificates are verified")
	}
	for j, c := range t.GetCipherSuites() {
		if !envoyCipherSuite(c) {
			v.warn(fmt.Sprintf("%s.tls.cipherSuites[%d]", f, j), "UnsupportedCipherSuite", fmt.Sprintf("cipher suite %q is not one Envoy knows; left out (as by istiod)", c))
		}
	}
	if min, max := t.GetMinProtocolVersion(), t.GetMaxProtocolVersion(); min != 0 && max != 0 && min > max {
		skip(f+".tls.minProtocolVersion", "InvalidTLSVersion", fmt.Sprintf("minProtocolVersion %s is above maxProtocolVersion %s; server skipped", min, max))
	}
	if t.GetMode() == networkingapi.ServerTLSSettings_ISTIO_MUTUAL {
		if t.GetCredentialName() != "" || len(t.GetCredentialNames()) > 0 || t.GetServerCertificate() != "" {
			v.warn(f+".tls", "IgnoredField", "ISTIO_MUTUAL uses the gateway's own workload certificate: credentialName and certificate files are ignored")
		}
		return servable
	}
	if len(t.GetCredentialNames()) > 2 {
		skip(f+".tls.credentialNames", "TooManyCredentials", "at most two credentialNames (one RSA, one ECDSA), as Istio; server skipped")
	}
	if len(ServerCredentialNames(t)) == 0 {
		switch {
		case t.GetServerCertificate() == "" || t.GetPrivateKey() == "":
			skip(f+".tls", "MissingCredential", "a terminating server needs credentialName(s), or serverCertificate and privateKey (files mounted in the gateway); server skipped")
		case t.GetMode() != networkingapi.ServerTLSSettings_SIMPLE && t.GetCaCertificates() == "":
			skip(f+".tls.caCertificates", "MissingCACert", fmt.Sprintf("%s with certificate files needs caCertificates (the CA file that signs client certificates); server skipped", t.GetMode()))
		}
	} else if t.GetServerCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" {
		v.warn(f+".tls", "IgnoredField", "credentialName wins over serverCertificate/privateKey/caCertificates (as in istiod): the files are ignored")
	}
	return servable
}

// GatewayServerServable: what translation serves of a Gateway's servers —
// a server the model refused on its own (see validateGatewayServer) is
// skipped, the others are served.
func GatewayServerServable(s *networkingapi.Server) bool {
	return (&validator{}).gatewayServer("", s)
}

// envoyCipherSuites are the cipher suite names Envoy's BoringSSL accepts
// (Envoy refuses a TLS context naming any other, and with it the listener).
var envoyCipherSuites = map[string]bool{
	"ECDHE-ECDSA-AES128-GCM-SHA256": true, "ECDHE-RSA-AES128-GCM-SHA256": true,
	"ECDHE-ECDSA-AES256-GCM-SHA384": true, "ECDHE-RSA-AES256-GCM-SHA384": true,
	"ECDHE-ECDSA-CHACHA20-POLY1305": true, "ECDHE-RSA-CHACHA20-POLY1305": true,
	"ECDHE-PSK-CHACHA20-POLY1305": true,
	"ECDHE-ECDSA-AES128-SHA":      true, "ECDHE-RSA-AES128-SHA": true, "ECDHE-PSK-AES128-CBC-SHA": true,
	"ECDHE-ECDSA-AES256-SHA": true, "ECDHE-RSA-AES256-SHA": true, "ECDHE-PSK-AES256-CBC-SHA": true,
	"AES128-GCM-SHA256": true, "AES256-GCM-SHA384": true, "AES128-SHA": true, "AES256-SHA": true,
	"PSK-AES128-CBC-SHA": true, "PSK-AES256-CBC-SHA": true, "DES-CBC3-SHA": true,
}

// envoyCipherSuite: a name Envoy knows, or an equal-preference group
// "[A|B]" of such names.
func envoyCipherSuite(c string) bool {
	if strings.HasPrefix(c, "[") && strings.HasSuffix(c, "]") {
		for _, m := range strings.Split(c[1:len(c)-1], "|") {
			if !envoyCipherSuites[m] {
				return false
			}
		}
		return true
	}
	return envoyCipherSuites[c]
}

// EnvoyCipherSuites keeps the cipher suites Envoy accepts, in order, each
// once (istiod filters them likewise); ValidateGateway warns about the rest.
func EnvoyCipherSuites(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range in {
		if envoyCipherSuite(c) && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// checkGatewayServerRoutes warns about the TCP, terminated TLS and
// PASSTHROUGH servers that no VirtualService route serves (a listener needs a
// filter chain, so they get none), and about tls route matches whose SNI an
// earlier match of the same server's port already claimed (Envoy refuses two
// equal matches; the earlier one is served, as by istiod).
func (s *Snapshot) checkGatewayServerRoutes() []ConfigError {
	var errs []ConfigError
	for _, gw := range s.Gateways {
		key := gw.Namespace + "/" + gw.Name
		for i, srv := range gw.Spec.GetServers() {
			kind := ServerKind(srv)
			if (kind != ServerTCP && kind != ServerTLSTerminated && kind != ServerPassthrough) || !GatewayServerServable(srv) {
				continue
			}
			routed := false
			claimed := map[string]string{}
			for _, vs := range s.VirtualServices {
				if !vsBoundToGateway(vs, key) || !hostsMeet(srv.GetHosts(), vs) {
					continue
				}
				if kind != ServerPassthrough {
					for _, r := range vs.Spec.GetTcp() {
						ok := len(r.GetMatch()) == 0
						for _, m := range r.GetMatch() {
							ok = ok || l4MatchFitsServer(vs, key, srv, m.GetPort(), m.GetGateways())
						}
						routed = routed || (ok && len(r.GetRoute()) > 0)
					}
					continue
				}
				for ri, r := range vs.Spec.GetTls() {
					for mi, m := range r.GetMatch() {
						if len(r.GetRoute()) == 0 || !l4MatchFitsServer(vs, key, srv, m.GetPort(), m.GetGateways()) {
							continue
						}
						routed = true
						where := fmt.Sprintf("VirtualService %s/%s spec.tls[%d].match[%d]", vs.Namespace, vs.Name, ri, mi)
						for _, h := range m.GetSniHosts() {
							if prev, dup := claimed[strings.ToLower(h)]; dup {
								errs = append(errs, ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name,
									Field: fmt.Sprintf("spec.tls[%d].match[%d].sniHosts", ri, mi), Code: "DuplicateSNIMatch", Warning: true,
									Message: fmt.Sprintf("SNI %s on Gateway %s port %d is already routed by %s; this match is not served", h, key, srv.GetPort().GetNumber(), prev)})
								break
							}
						}
						for _, h := range m.GetSniHosts() {
							if _, dup := claimed[strings.ToLower(h)]; !dup {
								claimed[strings.ToLower(h)] = where
							}
						}
					}
				}
			}
			if !routed {
				what := "tcp"
				if kind == ServerPassthrough {
					what = "tls"
				}
				errs = append(errs, ConfigError{Kind: "Gateway", Namespace: gw.Namespace, Name: gw.Name,
					Field: fmt.Sprintf("spec.servers[%d]", i), Code: "GatewayServerWithoutRoutes", Warning: true,
					Message: fmt.Sprintf("no VirtualService bound to this Gateway has a %s route for this %s server (port %d, hosts %s): it gets no listener until one does",
						what, kind, srv.GetPort().GetNumber(), strings.Join(srv.GetHosts(), ","))})
			}
		}
	}
	return errs
}

// vsBoundToGateway: the VirtualService names the Gateway in spec.gateways
// (short names in its own namespace).
func vsBoundToGateway(vs *networking.VirtualService, gwKey string) bool {
	for _, g := range vs.Spec.GetGateways() {
		if !strings.Contains(g, "/") {
			g = vs.Namespace + "/" + g
		}
		if g == gwKey {
			return true
		}
	}
	return false
}

// l4MatchFitsServer: a tcp/tls match's port and gateways fit the server.
func l4MatchFitsServer(vs *networking.VirtualService, gwKey string, srv *networkingapi.Server, port uint32, gateways []string) bool {
	if port != 0 && port != srv.GetPort().GetNumber() {
		return false
	}
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if !strings.Contains(g, "/") {
			g = vs.Namespace + "/" + g
		}
		if g == gwKey {
			return true
		}
	}
	return false
}

// hostsMeet: some host of the VirtualService and of the server cover one
// another (the server's namespace restriction included).
func hostsMeet(serverHosts []string, vs *networking.VirtualService) bool {
	for _, sh := range serverHosts {
		ns, host := "*", sh
		if i := strings.Index(sh, "/"); i >= 0 {
			ns, host = sh[:i], sh[i+1:]
		}
		if ns != "*" && ns != "." && ns != vs.Namespace {
			continue
		}
		for _, h := range vs.Spec.GetHosts() {
			h = ResolveHost(h, vs.Namespace)
			if wildcardCovers(host, h) || wildcardCovers(h, host) {
				return true
			}
		}
	}
	return false
}

func wildcardCovers(pattern, host string) bool {
	return pattern == host || pattern == "*" || (strings.HasPrefix(pattern, "*") && strings.HasSuffix(host, pattern[1:]))
}
