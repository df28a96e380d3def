package translate

import (
	"sort"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// VirtualService tls[] -> filter chains matched on SNI (server_names, found by
// the tls_inspector listener filter) of the outbound listener of a TLS/HTTPS
// service port; the TLS stream is passed through to `outbound|port|subset|host`
// untouched by tcp_proxy. As in istiod, when some tls rule matches the port no
// default chain is added (a connection with another SNI has no chain and is
// closed); without one, the service's own cluster gets all traffic on its VIP,
// or the connections whose SNI is the service hostname on `0.0.0.0_<port>`.

const tlsInspectorName = "envoy.filters.listener.tls_inspector"

func tlsInspectorFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       tlsInspectorName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

// tlsFilterChains builds the chains one TLS service port contributes. claimed
// holds the (SNI, destination prefixes) pairs earlier chains of the same
// listener match; an overlapping pair would make Envoy refuse the listener, and
// the earlier rule wins anyway. sniDefault makes the default chain match the
// service hostname (listeners without a VIP, shared by several services).
func tlsFilterChains(snap *model.Snapshot, svc *model.Service, port *model.Port, vss []*networking.VirtualService,
	scope *l4Scope, claimed map[string]bool, sniDefault bool) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	matched := false
	for _, vs := range vss {
		for _, r := range vs.Spec.GetTls() {
			for _, m := range r.GetMatch() {
				if !l4MatchApplies(vs, port.Port, m.GetPort(), m.GetGateways(), m.GetSourceLabels(), m.GetSourceNamespace(), scope) {
					continue
				}
				matched = true
				ranges := claimPrefixes(m.GetDestinationSubnets(), map[string]bool{})
				prefixKey := ""
				for _, rg := range ranges {
					prefixKey += "," + rg.GetAddressPrefix() + "/" + itoa(rg.GetPrefixLen().GetValue())
				}
				var names []string
				for _, sni := range m.GetSniHosts() {
					key := strings.ToLower(sni) + "|" + prefixKey
					if claimed[key] {
						continue
					}
					claimed[key] = true
					names = append(names, sni)
				}
				if len(names) == 0 {
					continue
				}
				out = append(out, vsFilterChain(vs, ranges, names, l4RouteFilters(snap, vs, r.GetRoute(), port.Port)))
			}
		}
	}
	if matched {
		return out
	}
	cluster := OutboundClusterName(defaultL4Port(svc, port), "", svc.Hostname)
	fc := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter(cluster, cluster)}}
	if sniDefault {
		key := svc.Hostname + "|"
		if claimed[key] {
			return out
		}
		claimed[key] = true
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: []string{svc.Hostname}}
	}
	return append(out, fc)
}

// vipLessTLSPorts groups the TLS ports of services without a VIP by port
// number: they share one `0.0.0.0_<port>` listener, told apart by SNI.
func vipLessTLSPorts(snap *model.Snapshot) (map[uint32][]*model.Service, []uint32) {
	byPort := map[uint32][]*model.Service{}
	for _, svc := range snap.Services() {
		if svc.ClusterIP != "" {
			continue
		}
		for _, p := range svc.Ports {
			if p.Protocol.IsTLS() {
				byPort[p.Port] = append(byPort[p.Port], svc)
			}
		}
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return byPort, ports
}
