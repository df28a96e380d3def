package translate

import (
	"net"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// VirtualService tcp[] -> filter chains of the outbound `<vip>_<port>` listener
// of a TCP service port. Like istiod, every mesh-bound VirtualService whose
// hosts cover the service contributes, oldest first, and the first rule that
// matches everything ends the list; rules that match only some destination
// subnets become filter chains matched on those prefixes. Port, sourceLabels and
// sourceNamespace are decided while building (they are facts about the proxy
// and the listener), as Istio does.

// l4Scope is the caller for L4 matches; nil means "no proxy yet": only used for
// listeners whose VirtualServices have no sourceLabels/sourceNamespace matches.
type l4Scope struct {
	namespace string
	labels    map[string]string
}

// l4VirtualServices are the mesh-bound VirtualServices whose hosts cover host,
// oldest first.
func l4VirtualServices(snap *model.Snapshot, host string) []*networking.VirtualService {
	var out []*networking.VirtualService
	for _, vs := range snap.VirtualServices {
		if len(vs.Spec.GetTcp()) == 0 && len(vs.Spec.GetTls()) == 0 {
			continue
		}
		if !gatewaysSelect(vs.Spec.GetGateways(), vs.Namespace, meshGateway) {
			continue
		}
		for _, h := range vs.Spec.GetHosts() {
			if hostMatches(model.ResolveHost(h, vs.Namespace), host) {
				out = append(out, vs)
				break
			}
		}
	}
	return out
}

var meshGateway = map[string]bool{"mesh": true}

// l4DependsOnProxy reports whether any tcp/tls match of vss selects callers
// (sourceLabels, sourceNamespace): then the listener is built per proxy.
func l4DependsOnProxy(vss []*networking.VirtualService) bool {
	for _, vs := range vss {
		for _, r := range vs.Spec.GetTcp() {
			for _, m := range r.GetMatch() {
				if len(m.GetSourceLabels()) > 0 || m.GetSourceNamespace() != "" {
					return true
				}
			}
		}
		for _, r := range vs.Spec.GetTls() {
			for _, m := range r.GetMatch() {
				if len(m.GetSourceLabels()) > 0 || m.GetSourceNamespace() != "" {
					return true
				}
			}
		}
	}
	return false
}

// l4MatchApplies evaluates the static part of a TCP or TLS match.
func l4MatchApplies(vs *networking.VirtualService, port uint32, matchPort uint32, gateways []string,
	sourceLabels map[string]string, sourceNS string, scope *l4Scope) bool {
	if matchPort != 0 && matchPort != port {
		return false
	}
	if len(gateways) > 0 && !gatewaysSelect(gateways, vs.Namespace, meshGateway) {
		return false
	}
	if len(sourceLabels) > 0 && (scope == nil || !model.LabelsMatch(sourceLabels, scope.labels)) {
		return false
	}
	if sourceNS != "" && (scope == nil || sourceNS != scope.namespace) {
		return false
	}
	return true
}

// tcpFilterChains builds the filter chains of a TCP (not TLS) service port.
func tcpFilterChains(snap *model.Snapshot, svc *model.Service, port *model.Port, vss []*networking.VirtualService, scope *l4Scope) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	claimed := map[string]bool{} // destination prefixes already routed
rules:
	for _, vs := range vss {
		for _, r := range vs.Spec.GetTcp() {
			var subnets []string
			for _, m := range r.GetMatch() {
				if !l4MatchApplies(vs, port.Port, m.GetPort(), m.GetGateways(), m.GetSourceLabels(), m.GetSourceNamespace(), scope) {
					continue
				}
				if len(m.GetDestinationSubnets()) == 0 {
					out = append(out, vsFilterChain(vs, nil, nil, l4RouteFilters(snap, vs, r.GetRoute(), port.Port)))
					return out
				}
				subnets = append(subnets, m.GetDestinationSubnets()...)
			}
			if len(r.GetMatch()) == 0 {
				out = append(out, vsFilterChain(vs, nil, nil, l4RouteFilters(snap, vs, r.GetRoute(), port.Port)))
				break rules
			}
			if ranges := claimPrefixes(subnets, claimed); len(ranges) > 0 {
				out = append(out, vsFilterChain(vs, ranges, nil, l4RouteFilters(snap, vs, r.GetRoute(), port.Port)))
			}
		}
	}
	if len(out) > 0 && out[len(out)-1].GetFilterChainMatch() == nil {
		return out
	}
	cluster := OutboundClusterName(defaultL4Port(svc, port), "", svc.Hostname)
	return append(out, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter(cluster, cluster)}})
}

// defaultL4Port: with no VirtualService, a single-port service is reached on
// its only port (as Istio picks the cluster), otherwise on the listener port.
func defaultL4Port(svc *model.Service, port *model.Port) uint32 {
	if len(svc.Ports) == 1 {
		return svc.Ports[0].Port
	}
	return port.Port
}

func vsFilterChain(vs *networking.VirtualService, ranges []*corev3.CidrRange, serverNames []string, filters []*listenerv3.Filter) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{
		Filters:  filters,
		Metadata: istioConfigMetadata("virtual-service", vs.Namespace, vs.Name),
	}
	if len(ranges) > 0 || len(serverNames) > 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{PrefixRanges: ranges, ServerNames: serverNames}
	}
	return fc
}

// l4RouteFilters is the tcp_proxy for a TCP or TLS route: one cluster, or
// weighted clusters (zero weights dropped) under the VirtualService's stat
// prefix, as istiod names them.
func l4RouteFilters(snap *model.Snapshot, vs *networking.VirtualService, dests []*networkingapi.RouteDestination, port uint32) []*listenerv3.Filter {
	if len(dests) == 1 {
		cluster := destinationCluster(snap, dests[0].GetDestination(), vs.Namespace, port)
		return []*listenerv3.Filter{tcpProxyFilter(cluster, cluster)}
	}
	wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
	for _, d := range dests {
		if d.GetWeight() <= 0 {
			continue
		}
		wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{
			Name:   destinationCluster(snap, d.GetDestination(), vs.Namespace, port),
			Weight: uint32(d.GetWeight()),
		})
	}
	return []*listenerv3.Filter{{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
		StatPrefix:       vs.Name + "." + vs.Namespace,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc},
	})}}}
}

// claimPrefixes converts subnets ("10.0.0.0/8" or a bare address) to Envoy CIDR
// ranges, leaving out those an earlier chain already matches: two chains with
// the same match are a NACK, and the earlier rule wins anyway.
func claimPrefixes(subnets []string, claimed map[string]bool) []*corev3.CidrRange {
	var out []*corev3.CidrRange
	for _, s := range subnets {
		r := cidrRange(s)
		if r == nil {
			continue // refused by validation
		}
		key := r.GetAddressPrefix() + "/" + itoa(r.GetPrefixLen().GetValue())
		if claimed[key] {
			continue
		}
		claimed[key] = true
		out = append(out, r)
	}
	return out
}

func cidrRange(s string) *corev3.CidrRange {
	if !strings.Contains(s, "/") {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil
		}
		bits := uint32(128)
		if ip.To4() != nil {
			bits = 32
		}
		return &corev3.CidrRange{AddressPrefix: ip.String(), PrefixLen: u32(bits)}
	}
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil
	}
	ones, _ := n.Mask.Size()
	return &corev3.CidrRange{AddressPrefix: ip.String(), PrefixLen: u32(uint32(ones))}
}
