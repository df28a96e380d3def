package translate

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// CredentialSecretName is Istio's SDS name for a Gateway server's
// tls.credentialName: `kubernetes://<name>`; a MUTUAL server's CA is
// `kubernetes://<name>-cacert`. xds serves them from the Secrets.
func CredentialSecretName(name string) string { return "kubernetes://" + name }

// CredentialCASecretName is the SDS name of a credential's CA bundle.
func CredentialCASecretName(name string) string {
	return CredentialSecretName(name + model.CACertSecretSuffix)
}

// GatewayHTTPSRouteName is Istio's route name for one HTTPS server:
// `https.<port>.<portName>.<gateway>.<ns>`.
func GatewayHTTPSRouteName(port uint32, portName, gateway, ns string) string {
	return fmt.Sprintf("https.%d.%s.%s.%s", port, portName, gateway, ns)
}

// FileCertSecretName is istiod's SDS name for a server's certificate files,
// `file-cert:<serverCertificate>~<privateKey>`: istio-agent reads them in the
// gateway's filesystem and serves them (and watches them for rotation).
func FileCertSecretName(cert, key string) string { return "file-cert:" + cert + "~" + key }

// FileRootSecretName is istiod's SDS name for a server's caCertificates file.
func FileRootSecretName(ca string) string { return "file-root:" + ca }

// gatewaySNIChains builds the filter chains of a listener whose servers are
// routed by SNI (tls_inspector): per terminating server a chain that holds
// its certificate and runs an HTTP connection manager (HTTPS) or the
// VirtualService tcp routes (TLS); per PASSTHROUGH server the chains of its
// VirtualService tls routes (listeners_gateway_tcp.go); per AUTO_PASSTHROUGH
// server a chain per mesh cluster (listeners_gateway_tcp.go).
func gatewaySNIChains(snap *model.Snapshot, proxy *model.Proxy, p *gatewayListenerPlan, listenerName string,
	authn, authz []*hcmv3.HttpFilter, tcpAuthz []*listenerv3.Filter) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	sniMatch := func(names []string) *listenerv3.FilterChainMatch {
		if len(names) == 0 {
			return nil
		}
		return &listenerv3.FilterChainMatch{ServerNames: names}
	}
	// Chains of VirtualService tls routes match their own sniHosts; those
	// must not repeat a server's hosts or each other (Envoy refuses two
	// equal matches; the earlier one wins, as in istiod).
	claimed := map[string]bool{}
	for _, c := range p.chains {
		if c.kind != model.ServerPassthrough {
			claimSNI(claimed, c.serverNames)
		}
	}
	for _, c := range p.chains {
		switch c.kind {
		case model.ServerHTTPS:
			out = append(out, &listenerv3.FilterChain{
				Name:             c.routeName,
				FilterChainMatch: sniMatch(c.serverNames),
				TransportSocket:  gatewayServerTLS(proxy, c.server.server.GetTls(), true),
				Filters: []*listenerv3.Filter{
					httpConnectionManagerFilter(hcmOptions{statPrefix: "outbound_" + listenerName, rds: c.routeName, gateway: true, routeFilters: true, authFilters: authn, authz: authz}),
				},
			})
		case model.ServerTLSTerminated:
			filters := gatewayTCPFilters(snap, c.server, p.port)
			if len(filters) == 0 {
				continue // no tcp route bound (the model warns)
			}
			out = append(out, &listenerv3.FilterChain{
				FilterChainMatch: sniMatch(c.serverNames),
				TransportSocket:  gatewayServerTLS(proxy, c.server.server.GetTls(), false),
				Filters:          append(append([]*listenerv3.Filter(nil), tcpAuthz...), filters...),
			})
		case model.ServerPassthrough:
			out = append(out, gatewayPassthroughChains(snap, c.server, p.port, claimed, tcpAuthz)...)
		case model.ServerAutoPassthrough:
			out = append(out, gatewayAutoPassthroughChains(snap, c.server, claimed)...)
		}
	}
	return out
}

// gatewayServerTLS terminates TLS for a server, as istiod's listener TLS
// context: the certificate from the server's credentials (SDS
// `kubernetes://<name>` over ADS, one per credentialName: an RSA and an ECDSA
// one are served side by side and Envoy picks by the client's algorithms),
// from the workload certificate (ISTIO_MUTUAL: `default`/`ROOTCA`), or from
// files in the gateway (istio-agent serves `file-cert:`/`file-root:` names
// over its SDS; an Envoy mizzen bootstrapped reads the files itself, since
// mizzen cannot see the gateway's filesystem). MUTUAL and ISTIO_MUTUAL
// require a client certificate, OPTIONAL_MUTUAL verifies one when offered;
// subjectAltNames, verifyCertificateSpki/Hash narrow which are accepted.
func gatewayServerTLS(proxy *model.Proxy, t *networkingapi.ServerTLSSettings, http bool) *corev3.TransportSocket {
	mode := t.GetMode()
	alpn := []string{"h2", "http/1.1"}
	if !http && mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL {
		// A sidecar's mTLS to a TCP port offers Istio's ALPNs.
		alpn = []string{"istio-peer-exchange", "h2", "http/1.1"}
	}
	common := &tlsv3.CommonTlsContext{AlpnProtocols: alpn}
	ctx := &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         common,
		RequireClientCertificate: boolv(mode == networkingapi.ServerTLSSettings_MUTUAL || mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL),
	}
	validate := model.ValidatesClient(mode)
	verify := &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: sanMatchers(t.GetSubjectAltNames()),
		VerifyCertificateSpki:     t.GetVerifyCertificateSpki(),
		VerifyCertificateHash:     t.GetVerifyCertificateHash(),
	}
	combined := func(ca *tlsv3.SdsSecretConfig) {
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         verify,
				ValidationContextSdsSecretConfig: ca,
			},
		}
	}
	names := model.ServerCredentialNames(t)
	switch {
	case mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL:
		src := workloadSDSOf(proxy.AgentSDS())
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{src.secret(SDSDefaultSecret)}
		combined(src.secret(SDSRootCASecret))
	case len(names) > 0:
		for _, n := range names {
			common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs, sdsSecret(CredentialSecretName(n)))
		}
		if validate {
			// One CA for all of them, the first credential's, as Istio.
			combined(sdsSecret(CredentialCASecretName(names[0])))
		} else if len(t.GetSubjectAltNames()) > 0 {
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				MatchTypedSubjectAltNames: verify.MatchTypedSubjectAltNames}}
		}
	case proxy.AgentSDS():
		agent := workloadSDSOf(true)
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{agent.secret(FileCertSecretName(t.GetServerCertificate(), t.GetPrivateKey()))}
		if validate {
			combined(agent.secret(FileRootSecretName(t.GetCaCertificates())))
		}
	default:
		common.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(t.GetServerCertificate()),
			PrivateKey:       fileSource(t.GetPrivateKey()),
		}}
		if validate {
			verify.TrustedCa = fileSource(t.GetCaCertificates())
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: verify}
		}
	}
	if mode != networkingapi.ServerTLSSettings_ISTIO_MUTUAL {
		applyServerTLSParams(t, common)
	}
	return tlsSocket(ctx)
}

// applyServerTLSParams: minProtocolVersion, maxProtocolVersion and
// cipherSuites (those Envoy knows; the model warns about the others, which
// Envoy would refuse the whole listener for).
func applyServerTLSParams(t *networkingapi.ServerTLSSettings, common *tlsv3.CommonTlsContext) {
	params := &tlsv3.TlsParameters{}
	set := false
	if v := t.GetMinProtocolVersion(); v != networkingapi.ServerTLSSettings_TLS_AUTO {
		params.TlsMinimumProtocolVersion, set = tlsv3.TlsParameters_TlsProtocol(v), true
	}
	if v := t.GetMaxProtocolVersion(); v != networkingapi.ServerTLSSettings_TLS_AUTO {
		params.TlsMaximumProtocolVersion, set = tlsv3.TlsParameters_TlsProtocol(v), true
	}
	if cs := model.EnvoyCipherSuites(t.GetCipherSuites()); len(cs) > 0 {
		params.CipherSuites, set = cs, true
	}
	if set {
		common.TlsParams = params
	}
}
