package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Gateway servers that carry TCP (istiod's gateway network filters):
//
//   - TCP, and TLS terminated by the gateway: the first tcp route of the
//     VirtualServices bound to the server's Gateway (oldest first) whose hosts
//     meet the server's and whose match (port, gateways) fits the server.
//   - PASSTHROUGH: a filter chain per matching tls route match, on its
//     sniHosts, the TLS stream passed on untouched.
//   - AUTO_PASSTHROUGH: a filter chain per mesh service port (and subset) the
//     server's hosts cover, matched on the SNI an Istio client sends,
//     outbound_.<port>_.<subset>_.<host>, and on Istio's mTLS ALPNs, so only
//     Istio mTLS gets through; it goes to the cluster of that name
//     (GatewayClusters), the mTLS left to the destination's sidecar.

// gatewayBoundVirtualServices are the VirtualServices bound to the server's
// Gateway whose hosts meet the server's, oldest first.
func gatewayBoundVirtualServices(snap *model.Snapshot, gs gatewayServer) []*networking.VirtualService {
	gws := map[string]bool{gs.key(): true}
	var out []*networking.VirtualService
	for _, vs := range snap.VirtualServices {
		if len(vs.Spec.GetGateways()) == 0 || !gatewaysSelect(vs.Spec.GetGateways(), vs.Namespace, gws) {
			continue
		}
		for _, h := range vs.Spec.GetHosts() {
			if _, ok := intersectServerHosts(gs, vs, model.ResolveHost(h, vs.Namespace)); ok {
				out = append(out, vs)
				break
			}
		}
	}
	return out
}

// gatewayL4Match: a tcp or tls match's port and gateways fit the server
// (source and destination conditions mean nothing at a gateway's edge).
func gatewayL4Match(vs *networking.VirtualService, gs gatewayServer, port uint32, gateways []string) bool {
	if port != 0 && port != gs.server.GetPort().GetNumber() {
		return false
	}
	return len(gateways) == 0 || gatewaysSelect(gateways, vs.Namespace, map[string]bool{gs.key(): true})
}

// gatewayTCPFilters is the tcp_proxy of a TCP or terminated TLS server; nil
// when no tcp route applies (the model warns: GatewayServerWithoutRoutes).
func gatewayTCPFilters(snap *model.Snapshot, gs gatewayServer, port uint32) []*listenerv3.Filter {
	for _, vs := range gatewayBoundVirtualServices(snap, gs) {
		for _, r := range vs.Spec.GetTcp() {
			if len(r.GetRoute()) == 0 {
				continue
			}
			matched := len(r.GetMatch()) == 0
			for _, m := range r.GetMatch() {
				matched = matched || gatewayL4Match(vs, gs, m.GetPort(), m.GetGateways())
			}
			if matched {
				return l4RouteFilters(snap, vs, r.GetRoute(), port)
			}
		}
	}
	return nil
}

// gatewayPassthroughChains are a PASSTHROUGH server's chains: one per tls
// route match, on its sniHosts. A match repeating a claimed SNI is skipped
// whole, as istiod does (Envoy would refuse the listener).
func gatewayPassthroughChains(snap *model.Snapshot, gs gatewayServer, port uint32, claimed map[string]bool, tcpAuthz []*listenerv3.Filter) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	for _, vs := range gatewayBoundVirtualServices(snap, gs) {
		for _, r := range vs.Spec.GetTls() {
			if len(r.GetRoute()) == 0 {
				continue
			}
			for _, m := range r.GetMatch() {
				if len(m.GetSniHosts()) == 0 || !gatewayL4Match(vs, gs, m.GetPort(), m.GetGateways()) {
					continue
				}
				if !claimSNI(claimed, m.GetSniHosts()) {
					continue
				}
				filters := append(append([]*listenerv3.Filter(nil), tcpAuthz...), l4RouteFilters(snap, vs, r.GetRoute(), port)...)
				out = append(out, vsFilterChain(vs, nil, m.GetSniHosts(), filters))
			}
		}
	}
	return out
}

// autoPassthroughTarget is one cluster an AUTO_PASSTHROUGH server reaches:
// sni is the SNI (and the gateway's cluster name), outbound the mesh cluster
// it is a copy of.
type autoPassthroughTarget struct{ sni, outbound string }

// autoPassthroughTargets lists the clusters an AUTO_PASSTHROUGH server
// covers: every port of every mesh (not MESH_EXTERNAL) service whose name
// its hosts cover, and every subset of the service's DestinationRule.
func autoPassthroughTargets(snap *model.Snapshot, proxyNS string, s *networkingapi.Server) []autoPassthroughTarget {
	hosts := model.SNINames(s.GetHosts())
	var out []autoPassthroughTarget
	for _, svc := range snap.Services() {
		if svc.MeshExternal {
			continue
		}
		covered := len(hosts) == 0 // "*"
		for _, h := range hosts {
			covered = covered || hostMatches(h, svc.Hostname)
		}
		if !covered {
			continue
		}
		var subsets []string
		if dr := snap.DestinationRuleFor(svc.Hostname, proxyNS); dr != nil {
			for _, ss := range dr.Spec.GetSubsets() {
				subsets = append(subsets, ss.GetName())
			}
		}
		for _, p := range svc.Ports {
			out = append(out, autoPassthroughTarget{istioMTLSSNI(p.Port, "", svc.Hostname), OutboundClusterName(p.Port, "", svc.Hostname)})
			for _, ss := range subsets {
				out = append(out, autoPassthroughTarget{istioMTLSSNI(p.Port, ss, svc.Hostname), OutboundClusterName(p.Port, ss, svc.Hostname)})
			}
		}
	}
	return out
}

func gatewayAutoPassthroughChains(snap *model.Snapshot, gs gatewayServer, claimed map[string]bool) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	for _, t := range autoPassthroughTargets(snap, gs.gateway.Namespace, gs.server) {
		if !claimSNI(claimed, []string{t.sni}) {
			continue
		}
		out = append(out, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{t.sni}, ApplicationProtocols: istioMTLSALPNs},
			Filters:          []*listenerv3.Filter{tcpProxyFilter(t.sni, t.sni)},
		})
	}
	return out
}

// GatewayClusters are the clusters only a gateway has: for AUTO_PASSTHROUGH
// servers, `outbound_.<port>_.<subset>_.<host>` — the mesh cluster of that
// service port and subset under the SNI's name, without a transport socket
// (the client's mTLS passes through to the destination's sidecar). Their
// endpoints are GatewayEndpoints, under the same names: an EDS name of their
// own, so Envoy subscribes to it when the cluster appears (a new cluster
// reading an EDS name the proxy already holds would wait for endpoints that
// are never re-sent, until Envoy's 15 s initial fetch timeout).
func GatewayClusters(snap *model.Snapshot, proxy *model.Proxy) []*clusterv3.Cluster {
	targets := gatewayAutoPassthroughTargets(snap, proxy)
	if len(targets) == 0 {
		return nil
	}
	outbound := map[string]*clusterv3.Cluster{}
	for _, c := range OutboundClustersFor(snap, proxy.Namespace) {
		outbound[c.GetName()] = c
	}
	var out []*clusterv3.Cluster
	for _, t := range targets {
		base := outbound[t.outbound]
		if base == nil {
			continue
		}
		c := proto.Clone(base).(*clusterv3.Cluster)
		c.Name = t.sni
		c.TransportSocket, c.TransportSocketMatches = nil, nil
		if eds := c.GetEdsClusterConfig(); eds != nil {
			eds.ServiceName = t.sni
		}
		if la := c.GetLoadAssignment(); la != nil {
			la.ClusterName = t.sni
		}
		out = append(out, c)
	}
	return out
}

// GatewayEndpoints are the load assignments of GatewayClusters' EDS
// clusters: the mesh cluster's endpoints under the SNI's name.
func GatewayEndpoints(snap *model.Snapshot, proxy *model.Proxy) []*endpointv3.ClusterLoadAssignment {
	targets := gatewayAutoPassthroughTargets(snap, proxy)
	if len(targets) == 0 {
		return nil
	}
	byName := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, cla := range OutboundEndpointsFor(snap, proxy.Namespace) {
		byName[cla.GetClusterName()] = cla
	}
	var out []*endpointv3.ClusterLoadAssignment
	for _, t := range targets {
		base := byName[t.outbound]
		if base == nil {
			continue // not an EDS cluster: its endpoints are in the cluster
		}
		cla := proto.Clone(base).(*endpointv3.ClusterLoadAssignment)
		cla.ClusterName = t.sni
		out = append(out, cla)
	}
	return out
}

// gatewayAutoPassthroughTargets lists, once each, the clusters the proxy's
// AUTO_PASSTHROUGH servers reach.
func gatewayAutoPassthroughTargets(snap *model.Snapshot, proxy *model.Proxy) []autoPassthroughTarget {
	seen := map[string]bool{}
	var out []autoPassthroughTarget
	for _, p := range gatewayPlans(snap, proxy) {
		if privileged(proxy, p.bindPort) {
			continue
		}
		for _, c := range p.chains {
			if c.kind != model.ServerAutoPassthrough {
				continue
			}
			for _, t := range autoPassthroughTargets(snap, c.server.gateway.Namespace, c.server.server) {
				if !seen[t.sni] {
					seen[t.sni] = true
					out = append(out, t)
				}
			}
		}
	}
	return out
}
