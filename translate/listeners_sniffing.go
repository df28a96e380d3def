package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	setfilterstatecommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"
	setfilterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_filter_state/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Protocol sniffing (istiod's "auto" protocol): a service port whose name and
// appProtocol say nothing gets a listener that lets Envoy's http_inspector
// look at the client's first bytes. HTTP/1.x and h2c take the HTTP branch
// (the port's route table `<port>`, so VirtualService http rules apply);
// anything else — TLS, a binary protocol, or a server-first protocol whose
// client sends nothing until the detection timeout — takes the TCP branch.

const httpInspectorName = "envoy.filters.listener.http_inspector"

// plaintextHTTPALPNs are what the http_inspector reports for HTTP/1.0, 1.1
// and HTTP/2 prior knowledge; a chain matching them is the HTTP branch.
var plaintextHTTPALPNs = []string{"http/1.0", "http/1.1", "h2c"}

// mtlsHTTPALPNs mark Istio mTLS that carries HTTP. The server cannot look
// inside TLS before choosing a chain, so the client says it in the ALPN:
// istiod's clients do it with Istio's own alpn filter; mizzen's set the same
// value through filter state (sniffedALPNFilter), which stock Envoy offers.
var mtlsHTTPALPNs = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}

// sniffedALPN is the one value mizzen's clients send on the HTTP branch: the
// server's HTTP connection manager detects HTTP/1.1 or HTTP/2 by itself, so
// it only has to know "HTTP", not which version.
const sniffedALPN = "istio-http/1.1"

// Chain names of a sniffed port, so config dumps, stats, proxy-config and
// explain say which branch a connection took.
const (
	sniffedHTTPChain = "sniffed-http"
	sniffedTCPChain  = "sniffed-tcp"
)

func httpInspectorFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       httpInspectorName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspectorv3.HttpInspector{})},
	}
}

// applyDetectionTimeout: a client that sends nothing first (MySQL, SMTP)
// leaves the inspectors waiting; after MeshConfig protocolDetectionTimeout
// the connection goes on undetected, i.e. through the TCP branch, as in
// istiod. Unset keeps Envoy's own listener_filters_timeout (15 s); "0s" waits
// forever, which is what istiod's default means for server-first protocols on
// sniffed ports (name them tcp-… instead).
func applyDetectionTimeout(snap *model.Snapshot, l *listenerv3.Listener) {
	l.ContinueOnListenerFiltersTimeout = true
	if t := snap.Mesh.GetProtocolDetectionTimeout(); t != nil {
		l.ListenerFiltersTimeout = t
	}
}

// sniffOutbound turns a TCP listener of a sniffed port into a sniffing one:
// the HTTP branch first (it only matches what the inspector recognised), the
// port's TCP chains after it.
func sniffOutbound(snap *model.Snapshot, l *listenerv3.Listener, port uint32) {
	l.ListenerFilters = []*listenerv3.ListenerFilter{httpInspectorFilter()}
	applyDetectionTimeout(snap, l)
	for _, fc := range l.FilterChains {
		if fc.Name == "" && fc.FilterChainMatch == nil {
			fc.Name = sniffedTCPChain
		}
	}
	l.FilterChains = append([]*listenerv3.FilterChain{sniffedOutboundHTTPChain(l.Name, port)}, l.FilterChains...)
}

// sniffedOutboundHTTPChain is the HTTP branch of an outbound sniffed
// listener: the route table of the port, with the route filters (fault,
// CORS) and the ALPN that tells the server's sidecar this mTLS carries HTTP.
func sniffedOutboundHTTPChain(listener string, port uint32) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name:             sniffedHTTPChain,
		FilterChainMatch: &listenerv3.FilterChainMatch{ApplicationProtocols: plaintextHTTPALPNs},
		Filters: []*listenerv3.Filter{httpConnectionManagerFilter(hcmOptions{
			statPrefix: "outbound_" + listener, rds: SidecarOutboundRouteName(port), routeFilters: true, sniffedALPN: true,
		})},
	}
}

// sniffedALPNFilter makes the upstream connections of the HTTP branch offer
// sniffedALPN instead of the cluster's TCP ALPNs: the upstream TLS context
// takes an ALPN override from the request's filter state (shared with the
// upstream connection; Envoy keeps such connections in their own pool).
func sniffedALPNFilter() *hcmv3.HttpFilter {
	cfg := &setfilterstatev3.Config{OnRequestHeaders: []*setfilterstatecommonv3.FilterStateValue{{
		Key:                &setfilterstatecommonv3.FilterStateValue_ObjectKey{ObjectKey: "envoy.network.application_protocols"},
		Value:              &setfilterstatecommonv3.FilterStateValue_FormatString{FormatString: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: sniffedALPN}}}}},
		SharedWithUpstream: setfilterstatecommonv3.FilterStateValue_ONCE,
	}}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.set_filter_state", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// sniffedVariants splits each inbound variant of a sniffed port into its
// HTTP and TCP branches: plaintext by what the http_inspector saw, Istio mTLS
// by the ALPN the client sidecar sent (mtlsHTTPALPNs). A refused or
// passthrough-TLS variant has no HTTP branch.
func sniffedVariants(vs []inboundVariant) []inboundSniffed {
	var out []inboundSniffed
	for _, v := range vs {
		switch {
		case v.refuse:
			out = append(out, inboundSniffed{inboundVariant: v})
		case v.mtls:
			h, t := v, v
			h.alpn = mtlsHTTPALPNs
			// Two chains listing the same ALPN on one port are a NACK.
			t.alpn = without(v.alpn, mtlsHTTPALPNs)
			out = append(out, inboundSniffed{inboundVariant: h, http: true}, inboundSniffed{inboundVariant: t})
		case v.transport == transportTLS:
			out = append(out, inboundSniffed{inboundVariant: v}) // the app's own TLS, passed through
		default:
			h := v
			h.alpn = plaintextHTTPALPNs
			out = append(out, inboundSniffed{inboundVariant: h, http: true}, inboundSniffed{inboundVariant: v})
		}
	}
	return out
}

// inboundSniffed is one chain of a sniffed inbound port.
type inboundSniffed struct {
	inboundVariant
	http bool
}

func (s inboundSniffed) chainName(base string) string {
	if s.refuse {
		return s.inboundVariant.chainName(base)
	}
	if s.http {
		return s.inboundVariant.chainName(base) + "-" + sniffedHTTPChain
	}
	return s.inboundVariant.chainName(base) + "-" + sniffedTCPChain
}

// match always carries the port: the TCP branch of a plaintext variant must
// not become the listener's catch-all.
func (s inboundSniffed) match(port uint32) *listenerv3.FilterChainMatch {
	return &listenerv3.FilterChainMatch{DestinationPort: u32(port), TransportProtocol: s.transport, ApplicationProtocols: s.alpn}
}

// inboundHTTPInspector runs the http_inspector on virtualInbound for the
// sniffed ports only: on any other port a server-first client would wait
// for it in vain.
func inboundHTTPInspector(sniffed []uint32) *listenerv3.ListenerFilter {
	if len(sniffed) == 0 {
		return nil
	}
	f := httpInspectorFilter()
	f.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: portsPredicate(sniffed)}}
	return f
}

// without returns the items of list that are not in drop.
func without(list, drop []string) []string {
	if len(list) == 0 {
		return nil
	}
	out := make([]string, 0, len(list))
next:
	for _, s := range list {
		for _, d := range drop {
			if s == d {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}
