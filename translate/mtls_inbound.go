package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Server side of PeerAuthentication: which filter chains an inbound port gets
// for its mTLS mode (model.Snapshot.MTLSFor), following istiod's
// filterchain_options.go.

// SDS secret names, as Istio names them; the xds layer serves both over ADS,
// and only to proxies with a proven Identity.
const (
	SDSDefaultSecret = "default" // the proxy's certificate chain and key
	SDSRootCASecret  = "ROOTCA"  // the mesh root, to validate peers
)

// Transport protocols the tls_inspector sets, and transport socket names.
const (
	transportTLS        = "tls"
	transportRawBuffer  = "raw_buffer"
	tlsTransportSocket  = "envoy.transport_sockets.tls"
	rawBufferSocketName = "envoy.transport_sockets.raw_buffer"
)

// istioMTLSALPNs are what Istio clients offer when they originate mTLS: a TLS
// connection with one of them comes from a sidecar, any other TLS is the
// app's own.
var istioMTLSALPNs = []string{"istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

// inboundVariant is one filter chain of an inbound port (or of the
// passthrough): what it matches and whether it terminates Istio mTLS.
type inboundVariant struct {
	mtls      bool   // terminate mTLS with the proxy's certificate, require a client certificate
	refuse    bool   // close every connection (STRICT without a certificate)
	transport string // filter_chain_match.transport_protocol; "" matches any
	alpn      []string
}

// inboundVariants is istiod's choice of chains per mode and protocol:
//
//   - STRICT: only a TLS chain (any ALPN), so plaintext finds no chain and is
//     refused.
//   - PERMISSIVE with an identity: mTLS for Istio's ALPNs, plaintext for
//     raw_buffer and, on TCP ports, the app's own TLS passed through.
//   - PERMISSIVE without an identity, DISABLE: one chain matching anything,
//     never terminating TLS.
//
// A proxy without an identity is never sent the `default` and `ROOTCA`
// secrets, so it gets no config that waits for them: Envoy would hold the
// listener (and at startup the whole proxy) warming until the secret's
// initial fetch times out, on every update. Its STRICT ports refuse every
// connection instead, which is what a TLS chain without a certificate would
// end up doing anyway (fail closed, at once).
func inboundVariants(mode model.MTLSMode, identity, http bool) []inboundVariant {
	switch {
	case mode == model.MTLSStrict && !identity:
		return []inboundVariant{{refuse: true}}
	case mode == model.MTLSStrict:
		return []inboundVariant{{mtls: true, transport: transportTLS}}
	case mode == model.MTLSPermissive && identity:
		out := []inboundVariant{
			{mtls: true, transport: transportTLS, alpn: istioMTLSALPNs},
			{transport: transportRawBuffer},
		}
		if !http {
			out = append(out, inboundVariant{transport: transportTLS})
		}
		return out
	}
	return []inboundVariant{{}}
}

// refusedChain closes every connection it gets.
func refusedChain(name string, m *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listenerv3.Filter{tcpProxyFilter(BlackHoleCluster, BlackHoleCluster)}}
}

// inspects reports whether any variant needs the tls_inspector.
func inspects(vs []inboundVariant) bool {
	for _, v := range vs {
		if v.transport != "" {
			return true
		}
	}
	return false
}

// chainName keeps the plaintext chain's name as it was before mTLS, so the
// chains of one port stay apart in stats and config dumps.
func (v inboundVariant) chainName(base string) string {
	switch {
	case v.mtls:
		return base + "-mtls"
	case v.refuse:
		return base + "-refused"
	case v.transport == transportTLS:
		return base + "-tls"
	}
	return base
}

// match is the variant's filter_chain_match on port (0: any port); nil when
// it would match everything.
func (v inboundVariant) match(port uint32) *listenerv3.FilterChainMatch {
	if port == 0 && v.transport == "" {
		return nil
	}
	m := &listenerv3.FilterChainMatch{TransportProtocol: v.transport, ApplicationProtocols: v.alpn}
	if port != 0 {
		m.DestinationPort = u32(port)
	}
	return m
}

// downstreamMTLS is the server side of Istio mTLS: the proxy's certificate,
// peers validated against the mesh root, a client certificate required. HTTP
// ports offer h2 and http/1.1 so the codec can follow what the client speaks.
func downstreamMTLS(http bool, src workloadSDS) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         istioCommonTLSContext(src),
		RequireClientCertificate: boolv(true),
	}
	ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
		ValidationContextSdsSecretConfig: src.secret(SDSRootCASecret),
	}
	if http {
		ctx.CommonTlsContext.AlpnProtocols = []string{"h2", "http/1.1"}
	}
	return tlsSocket(ctx)
}

// istioCommonTLSContext carries the proxy's own certificate (SDS `default`).
func istioCommonTLSContext(src workloadSDS) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{src.secret(SDSDefaultSecret)}}
}

// workloadSDS says where a proxy's `default` and `ROOTCA` come from: over the
// ADS stream from mizzen (an Envoy mizzen bootstrapped), or from istio-agent's
// own SDS server, the bootstrap's sds-grpc cluster (a stock Istio proxy: the
// agent made the key and holds it; mizzen never sees it). Gateway credentials
// (credentialName) come over ADS either way, as from istiod.
type workloadSDS bool

const (
	sdsOverADS   workloadSDS = false
	sdsFromAgent workloadSDS = true
)

func workloadSDSOf(agent bool) workloadSDS { return workloadSDS(agent) }

// AgentSDSCluster is the cluster of istio-agent's bootstrap that reaches its SDS server.
const AgentSDSCluster = "sds-grpc"

func (src workloadSDS) secret(name string) *tlsv3.SdsSecretConfig {
	if src == sdsOverADS {
		return sdsSecret(name)
	}
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:                   corev3.ApiConfigSource_GRPC,
			SetNodeOnFirstMessageOnly: true,
			TransportApiVersion:       corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AgentSDSCluster},
			}}},
		}},
		// As istiod: no fetch timeout; the agent answers once it has the certificate.
		InitialFetchTimeout: durationpb.New(0),
		ResourceApiVersion:  corev3.ApiVersion_V3,
	}}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// tlsSocket wraps a Downstream- or UpstreamTlsContext.
func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: tlsTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

func rawBufferSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: rawBufferSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})}}
}

// inboundTLSInspector returns the tls_inspector for virtualInbound, or nil
// when no chain matches on transport. It reads the client's first bytes, which
// a server-first protocol (MySQL) never sends, so it is switched off for the
// ports that do not need it: needs says which of the ports with their own
// chains do, passthrough whether the chains for every other port do.
func inboundTLSInspector(needs map[uint32]bool, passthrough bool) *listenerv3.ListenerFilter {
	var on, off []uint32
	for _, p := range sortedPorts(needs) {
		if needs[p] {
			on = append(on, p)
		} else {
			off = append(off, p)
		}
	}
	if len(on) == 0 && !passthrough {
		return nil
	}
	f := tlsInspectorFilter()
	switch {
	case passthrough && len(off) > 0:
		f.FilterDisabled = portsPredicate(off)
	case !passthrough:
		f.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: portsPredicate(on)}}
	}
	return f
}

// portsPredicate matches connections to any of the ports.
func portsPredicate(ports []uint32) *listenerv3.ListenerFilterChainMatchPredicate {
	one := func(p uint32) *listenerv3.ListenerFilterChainMatchPredicate {
		return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
			DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1},
		}}
	}
	if len(ports) == 1 {
		return one(ports[0])
	}
	set := &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{}
	for _, p := range ports {
		set.Rules = append(set.Rules, one(p))
	}
	return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{OrMatch: set}}
}

func sortedPorts(m map[uint32]bool) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sortU32(out)
	return out
}
