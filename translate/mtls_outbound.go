package translate

import (
	"fmt"
	"net"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Client side of mTLS: DestinationRule trafficPolicy.tls and Istio's auto mTLS
// on outbound clusters (istiod's cluster_tls.go), and the endpoint metadata
// auto mTLS selects on.

// Istio's names for auto mTLS: the pod label, the endpoint metadata Envoy's
// transport_socket_matches read, the match names.
const (
	TLSModeLabel           = "security.istio.io/tlsMode"
	tlsModeIstio           = "istio"
	transportSocketMatchMD = "envoy.transport_socket_match"
)

// ALPNs an Istio client offers: istio-peer-exchange and istio mark the
// connection as Istio mTLS to the server's filter chain match; HTTP/2
// clusters add theirs so the server's HTTP chain can negotiate h2.
var (
	alpnInMesh   = []string{"istio-peer-exchange", "istio"}
	alpnInMeshH2 = []string{"istio-peer-exchange", "istio-h2", "istio", "h2"}
)

// istioMTLSSNI is the SNI Istio clients send: outbound_.<port>_.<subset>_.<host>.
func istioMTLSSNI(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound_.%d_.%s_.%s", port, subset, host)
}

// applyClusterTLS sets how an outbound cluster of svc:port (subset, "" for
// the service's own) connects, by istiod's rules:
//
//   - tls DISABLE: plaintext.
//   - ISTIO_MUTUAL: always Istio mTLS, SNI and SANs defaulting to the
//     cluster's and the service's identities (secure naming). A proxy without
//     an identity cannot do it and fails closed (istioMTLSWithoutIdentity).
//   - SIMPLE / MUTUAL: TLS origination with the files the rule names (on the
//     proxy's file system); credentialName is ignored (the model warned).
//   - no tls: auto mTLS when the proxy holds a certificate (snap.ClientMTLS):
//     Istio mTLS to endpoints labelled security.istio.io/tlsMode=istio,
//     plaintext to the others. Never for MESH_EXTERNAL services, original
//     destination clusters, or services whose namespace (or the mesh) is
//     DISABLE, as istiod's BestEffortInferServiceMTLSMode decides.
func applyClusterTLS(snap *model.Snapshot, c *clusterv3.Cluster, svc *model.Service, port *model.Port, subset string, tls *networkingapi.ClientTLSSettings, http2 bool) {
	sni := istioMTLSSNI(port.Port, subset, svc.Hostname)
	if tls != nil {
		applyDestinationRuleTLS(snap, c, svc, sni, tls, http2)
		return
	}
	if svc.Headless && snap.ClientMTLS() && !svc.MeshExternal && snap.NamespaceMTLSMode(svc.Namespace) != model.MTLSDisable &&
		allSidecars(snap.Endpoints(svc.Hostname)) {
		// No endpoint metadata to match on an original-destination cluster:
		// istiod's rule for passthrough is mTLS when every endpoint has a
		// sidecar, plaintext otherwise.
		c.TransportSocket = tlsSocket(istioMTLSUpstream(sni, snap.ServiceIdentities(svc.Hostname), http2, workloadSDSOf(snap.AgentSDS())))
		return
	}
	if !snap.ClientMTLS() || svc.MeshExternal || svc.Resolution == model.ResolutionPassthrough ||
		snap.NamespaceMTLSMode(svc.Namespace) == model.MTLSDisable {
		return
	}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name:            "tlsMode-" + tlsModeIstio,
			Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(tlsModeIstio)}},
			TransportSocket: tlsSocket(istioMTLSUpstream(sni, snap.ServiceIdentities(svc.Hostname), http2, workloadSDSOf(snap.AgentSDS()))),
		},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: rawBufferSocket()},
	}
}

// applyDestinationRuleTLS applies a DestinationRule's tls setting.
func applyDestinationRuleTLS(snap *model.Snapshot, c *clusterv3.Cluster, svc *model.Service, sni string, tls *networkingapi.ClientTLSSettings, http2 bool) {
	switch tls.GetMode() {
	case networkingapi.ClientTLSSettings_ISTIO_MUTUAL:
		if tls.GetSni() != "" {
			sni = tls.GetSni()
		}
		sans := tls.GetSubjectAltNames()
		if len(sans) == 0 {
			sans = snap.ServiceIdentities(svc.Hostname)
		}
		if !snap.ClientMTLS() {
			c.TransportSocket = tlsSocket(istioMTLSWithoutIdentity(sni, http2))
			return
		}
		c.TransportSocket = tlsSocket(istioMTLSUpstream(sni, sans, http2, workloadSDSOf(snap.AgentSDS())))
	case networkingapi.ClientTLSSettings_SIMPLE, networkingapi.ClientTLSSettings_MUTUAL:
		if tls.GetCredentialName() == "" {
			c.TransportSocket = tlsSocket(fileTLSUpstream(tls, http2))
		}
	}
	// DISABLE: plaintext, whatever the endpoints accept.
}

// istioMTLSUpstream is the client side of Istio mTLS: the proxy's certificate
// (SDS `default`), the server validated against the mesh root (SDS `ROOTCA`)
// and, when known, required to be one of sans.
func istioMTLSUpstream(sni string, sans []string, http2 bool, src workloadSDS) *tlsv3.UpstreamTlsContext {
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: istioCommonTLSContext(src), Sni: sni}
	ctx.CommonTlsContext.AlpnProtocols = alpnInMesh
	if http2 {
		ctx.CommonTlsContext.AlpnProtocols = alpnInMeshH2
	}
	if len(sans) == 0 {
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: src.secret(SDSRootCASecret),
		}
		return ctx
	}
	ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
		CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(sans)},
			ValidationContextSdsSecretConfig: src.secret(SDSRootCASecret),
		},
	}
	return ctx
}

// istioMTLSWithoutIdentity stands in for Istio mTLS on a proxy without an
// identity. It gets no certificate and no mesh root (it is never sent the
// secrets; config waiting for them would keep the cluster, and at startup the
// whole proxy, warming until the fetch times out), so the connection must
// fail, and at once: no client certificate for mesh servers, which require
// one, and a pinned server certificate hash no certificate has. Fail closed,
// never plaintext.
func istioMTLSWithoutIdentity(sni string, http2 bool) *tlsv3.UpstreamTlsContext {
	ctx := &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: alpnInMesh,
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			VerifyCertificateHash: []string{strings.Repeat("0", 64)},
		}},
	}}
	if http2 {
		ctx.CommonTlsContext.AlpnProtocols = alpnInMeshH2
	}
	return ctx
}

// SystemRootsFile is where the proxy's system trust store is taken to be
// when a DestinationRule's SIMPLE or MUTUAL tls names no caCertificates: the
// CA bundle of Debian, Ubuntu (Istio's and Envoy's proxy images) and Alpine.
// Envoy's system_root_certs is not implemented, and istiod leaves finding the
// bundle to istio-agent, which a bare Envoy does not have.
const SystemRootsFile = "/etc/ssl/certs/ca-certificates.crt"

// fileTLSUpstream originates TLS with files on the proxy: caCertificates (the
// SystemRootsFile when unset), unless insecureSkipVerify; MUTUAL adds the client
// certificate and key. Without sni, HTTP clusters send the request's host
// (auto_sni, tlsHTTPOptions).
func fileTLSUpstream(tls *networkingapi.ClientTLSSettings, http2 bool) *tlsv3.UpstreamTlsContext {
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}, Sni: tls.GetSni()}
	if tls.GetMode() == networkingapi.ClientTLSSettings_MUTUAL {
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(tls.GetClientCertificate()),
			PrivateKey:       fileSource(tls.GetPrivateKey()),
		}}
	}
	if !tls.GetInsecureSkipVerify().GetValue() {
		vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(tls.GetSubjectAltNames())}
		ca := tls.GetCaCertificates()
		if ca == "" {
			ca = SystemRootsFile
		}
		vc.TrustedCa = fileSource(ca)
		if crl := tls.GetCaCrl(); crl != "" {
			vc.Crl = fileSource(crl)
		}
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	if http2 {
		ctx.CommonTlsContext.AlpnProtocols = []string{"h2"}
	}
	return ctx
}

// tlsHTTPOptions: TLS origination without sni sends the request's host as SNI
// and, unless verification is off or SANs are given, checks the certificate
// against it (istiod's setAutoSniAndAutoSanValidation).
func tlsHTTPOptions(opts *upstreamhttp.HttpProtocolOptions, port *model.Port, tls *networkingapi.ClientTLSSettings) *upstreamhttp.HttpProtocolOptions {
	mode := tls.GetMode()
	if !port.Protocol.IsHTTP() || tls.GetSni() != "" || tls.GetCredentialName() != "" ||
		(mode != networkingapi.ClientTLSSettings_SIMPLE && mode != networkingapi.ClientTLSSettings_MUTUAL) {
		return opts
	}
	if opts == nil {
		opts = &upstreamhttp.HttpProtocolOptions{}
	}
	if opts.UpstreamHttpProtocolOptions == nil {
		opts.UpstreamHttpProtocolOptions = &corev3.UpstreamHttpProtocolOptions{}
	}
	opts.UpstreamHttpProtocolOptions.AutoSni = true
	opts.UpstreamHttpProtocolOptions.AutoSanValidation = len(tls.GetSubjectAltNames()) == 0 && !tls.GetInsecureSkipVerify().GetValue()
	return opts
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// sanMatchers matches each name exactly, as the SAN type it looks like: a URI
// (spiffe://…), an IP address, else a DNS name.
func sanMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		t := tlsv3.SubjectAltNameMatcher_DNS
		switch {
		case strings.Contains(s, "://"):
			t = tlsv3.SubjectAltNameMatcher_URI
		case net.ParseIP(s) != nil:
			t = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: t, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
	}
	return out
}

// endpointMetadata marks an endpoint that accepts Istio mTLS for auto mTLS's
// transport_socket_matches: its pod carries security.istio.io/tlsMode=istio
// and its own PeerAuthentication does not DISABLE the target port (istiod's
// EDS mtlsChecker). Nil otherwise.
func endpointMetadata(snap *model.Snapshot, ep *model.Endpoint, target uint32) *corev3.Metadata {
	if ep.Labels[TLSModeLabel] != tlsModeIstio || snap.MTLSFor(ep.Namespace, ep.Labels).ForPort(target) == model.MTLSDisable {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		transportSocketMatchMD: {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(tlsModeIstio)}},
	}}
}

// allSidecars reports whether every endpoint carries Istio's tlsMode label
// (and there is one at all).
func allSidecars(eps []*model.Endpoint) bool {
	for _, ep := range eps {
		if ep.Labels[TLSModeLabel] != tlsModeIstio {
			return false
		}
	}
	return len(eps) > 0
}
