package translate

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// SidecarOutboundListeners builds virtualOutbound (15001, where capture sends all
// outbound TCP) and the per-port listeners it hands connections to: `0.0.0.0_<port>`
// for HTTP ports (routes by Host via RDS `<port>`), `<vip>_<port>` for TCP and
// TLS ports, `0.0.0.0_<port>` (by SNI) for TLS ports of services without a VIP.
// The per-port listeners don't bind: Envoy finds them by the original destination.
//
// Only what is the same for every sidecar is built here; L4 listeners whose
// VirtualServices match on sourceLabels/sourceNamespace come from
// SidecarOutboundProxyListeners.
func SidecarOutboundListeners(snap *model.Snapshot) []*listenerv3.Listener {
	fallback := outboundFallbackCluster(snap)
	out := []*listenerv3.Listener{{
		Name:           VirtualOutboundListener,
		Address:        socketAddress("0.0.0.0", VirtualOutboundPort),
		UseOriginalDst: boolv(true),
		FilterChains: []*listenerv3.FilterChain{{
			Name:    VirtualOutboundListener + "-catchall-tcp",
			Filters: []*listenerv3.Filter{tcpProxyFilter(fallback, fallback)},
		}},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}}
	for _, port := range outboundHTTPPorts(snap) {
		name := OutboundHTTPListenerName(port)
		out = append(out, &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress("0.0.0.0", port),
			BindToPort:       boolv(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
				httpConnectionManagerFilter(hcmOptions{statPrefix: "outbound_" + name, rds: SidecarOutboundRouteName(port), routeFilters: true}),
			}}},
		})
	}
	return withMeshTelemetry(snap, append(out, outboundL4Listeners(snap, nil)...))
}

// SidecarOutboundProxyListeners builds the outbound L4 listeners that depend on
// the proxy: those of services whose tcp/tls VirtualService rules select callers
// by sourceLabels or sourceNamespace. Usually none.
func SidecarOutboundProxyListeners(snap *model.Snapshot, proxy *model.Proxy) []*listenerv3.Listener {
	return withMeshTelemetry(snap, outboundL4Listeners(snap, &l4Scope{namespace: proxy.Namespace, labels: proxy.Labels}))
}

func outboundFallbackCluster(snap *model.Snapshot) string {
	if snap.Mesh.GetOutboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		return BlackHoleCluster
	}
	return PassthroughCluster
}

// outboundL4Listeners builds the TCP and TLS listeners: with scope nil those that
// are the same for every proxy, with a scope those that depend on it.
func outboundL4Listeners(snap *model.Snapshot, scope *l4Scope) []*listenerv3.Listener {
	perProxy := scope != nil
	var out []*listenerv3.Listener
	headless := map[string]bool{} // <pod ip>_<port> listeners made so far
	for _, svc := range snap.Services() {
		if svc.Headless {
			out = append(out, headlessListeners(snap, svc, scope, headless)...)
			continue
		}
		if svc.ClusterIP == "" {
			continue // no VIP to match on: TLS ports share 0.0.0.0_<port> below
		}
		var vss []*networking.VirtualService
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() {
				continue
			}
			if vss == nil {
				vss = l4VirtualServices(snap, svc.Hostname)
			}
			if l4DependsOnProxy(vss) != perProxy {
				continue
			}
			l := &listenerv3.Listener{
				Name:             OutboundTCPListenerName(svc.ClusterIP, p.Port),
				Address:          socketAddress(svc.ClusterIP, p.Port),
				BindToPort:       boolv(false),
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			}
			switch {
			case p.Protocol.IsTLS():
				l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspectorFilter()}
				l.ContinueOnListenerFiltersTimeout = true
				l.FilterChains = tlsFilterChains(snap, svc, p, vss, scope, map[string]bool{}, false)
			case p.Protocol.IsSniffed():
				l.FilterChains = tcpFilterChains(snap, svc, p, vss, scope)
				sniffOutbound(snap, l, p.Port)
			default:
				l.FilterChains = tcpFilterChains(snap, svc, p, vss, scope)
			}
			out = append(out, l)
		}
	}
	byPort, ports := vipLessTLSPorts(snap)
	httpPorts := map[uint32]bool{}
	for _, p := range outboundHTTPPorts(snap) {
		httpPorts[p] = true
	}
	for _, port := range ports {
		if httpPorts[port] {
			continue // 0.0.0.0_<port> is the HTTP listener; model reports the conflict
		}
		services := byPort[port]
		dependent := false
		vssBySvc := make([][]*networking.VirtualService, len(services))
		for i, svc := range services {
			vssBySvc[i] = l4VirtualServices(snap, svc.Hostname)
			dependent = dependent || l4DependsOnProxy(vssBySvc[i])
		}
		if dependent != perProxy {
			continue
		}
		fallback := outboundFallbackCluster(snap)
		l := &listenerv3.Listener{
			Name:                             OutboundHTTPListenerName(port),
			Address:                          socketAddress("0.0.0.0", port),
			BindToPort:                       boolv(false),
			TrafficDirection:                 corev3.TrafficDirection_OUTBOUND,
			ListenerFilters:                  []*listenerv3.ListenerFilter{tlsInspectorFilter()},
			ContinueOnListenerFiltersTimeout: true,
			// Other destinations on this port are not ours: pass them on (or
			// refuse them under REGISTRY_ONLY) as virtualOutbound would have.
			DefaultFilterChain: &listenerv3.FilterChain{Name: "fallback", Filters: []*listenerv3.Filter{tcpProxyFilter(fallback, fallback)}},
		}
		claimed := map[string]bool{}
		for i, svc := range services {
			l.FilterChains = append(l.FilterChains, tlsFilterChains(snap, svc, svc.PortByNumber(port), vssBySvc[i], scope, claimed, true)...)
		}
		out = append(out, l)
	}
	return out
}

// inboundPort is one port the proxy's own workload serves through a service.
type inboundPort struct {
	port       *model.Port
	targetPort uint32
	// endpoint is a Sidecar ingress listener's defaultEndpoint as host:port
	// ("127.0.0.1:8080"); empty means the pod's own address (original destination).
	endpoint string
}

// InboundKey is everything a sidecar's inbound clusters and virtualInbound
// take from endpoints (the ports of its own service instances, or its Sidecar's
// ingress listeners); the rest comes from config and the proxy itself. Equal
// keys under the same config give equal inbound config, so an endpoint change
// elsewhere in the mesh does not rebuild (or re-marshal) any proxy's inbound side.
func InboundKey(snap *model.Snapshot, proxy *model.Proxy) string {
	var b strings.Builder
	for _, in := range inboundPorts(snap, proxy) {
		fmt.Fprintf(&b, "%s/%d/%s/%d/%s;", in.port.Name, in.port.Port, in.port.Protocol, in.targetPort, in.endpoint)
	}
	return b.String()
}

// inboundPorts finds the proxy's own service instances: endpoints at one of its
// addresses. The first service to claim a target port decides its protocol.
func inboundPorts(snap *model.Snapshot, proxy *model.Proxy) []inboundPort {
	if ingress := sidecarIngressPorts(snap, proxy); ingress != nil {
		return ingress
	}
	seen := map[uint32]bool{}
	var out []inboundPort
	for _, ip := range proxy.InstanceIPs {
		for _, in := range snap.InstancesAt(ip) {
			for _, p := range in.Service.Ports {
				target, ok := in.Endpoint.Ports[p.Name]
				if !ok || seen[target] {
					continue
				}
				seen[target] = true
				out = append(out, inboundPort{port: p, targetPort: target})
			}
		}
	}
	return out
}

// SidecarInboundListeners builds virtualInbound (15006, where capture sends all
// inbound TCP): filter chains per port the workload serves, matched on the
// original destination port, and passthrough chains for everything else. The
// chains of a port follow its PeerAuthentication mode (mtls_inbound.go).
//
// Passthrough for other ports is the default filter chain as long as no chain
// matches on transport. Once one does, Envoy would hand a connection that a
// port's chains refuse (plaintext to a STRICT port) to the default chain, so
// then passthrough becomes port-less filter chains with the workload's mode
// and there is no default chain: what no chain accepts is closed.
func SidecarInboundListeners(snap *model.Snapshot, proxy *model.Proxy) []*listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:             VirtualInboundListener,
		Address:          socketAddress("0.0.0.0", VirtualInboundPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       "envoy.filters.listener.original_dst",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})},
		}},
	}
	policies := orderedAuthzPolicies(snap.AuthorizationPoliciesFor(proxy.Namespace, proxy.Labels))
	authn := jwtHTTPFilters(snap, proxy)
	mtls := snap.MTLSFor(proxy.Namespace, proxy.Labels)
	identity := proxy.Identity != ""
	inspect := map[uint32]bool{}
	var sniffed []uint32
	for _, in := range inboundPorts(snap, proxy) {
		cluster := InboundClusterName(in.targetPort)
		chain := func(name string, m *listenerv3.FilterChainMatch, mtls, http bool) *listenerv3.FilterChain {
			fc := &listenerv3.FilterChain{Name: name, FilterChainMatch: m}
			if mtls {
				// A sniffed port's client offers no h2/http/1.1 ALPN to agree on.
				fc.TransportSocket = downstreamMTLS(http && !in.port.Protocol.IsSniffed(), workloadSDSOf(proxy.AgentSDS()))
			}
			if http {
				fc.Filters = []*listenerv3.Filter{httpConnectionManagerFilter(hcmOptions{statPrefix: "inbound_0.0.0.0_" + itoa(in.targetPort), inline: inboundRouteConfig(in, cluster),
					authFilters: authn, authz: inboundRBAC(policies, false).httpFilters(), forwardClientCert: mtls})}
			} else {
				fc.Filters = append(inboundRBAC(policies, true).networkFilters(), tcpProxyFilter(cluster, cluster))
			}
			return fc
		}
		if in.port.Protocol.IsSniffed() {
			sniffed = append(sniffed, in.targetPort)
			variants := inboundVariants(mtls.ForPort(in.targetPort), identity, false)
			inspect[in.targetPort] = inspects(variants)
			for _, v := range sniffedVariants(variants) {
				if v.refuse {
					l.FilterChains = append(l.FilterChains, refusedChain(v.chainName(cluster), v.match(in.targetPort)))
					continue
				}
				l.FilterChains = append(l.FilterChains, chain(v.chainName(cluster), v.match(in.targetPort), v.mtls, v.http))
			}
			continue
		}
		http := in.port.Protocol.IsHTTP()
		variants := inboundVariants(mtls.ForPort(in.targetPort), identity, http)
		inspect[in.targetPort] = inspects(variants)
		for _, v := range variants {
			if v.refuse {
				l.FilterChains = append(l.FilterChains, refusedChain(v.chainName(cluster), v.match(in.targetPort)))
				continue
			}
			l.FilterChains = append(l.FilterChains, chain(v.chainName(cluster), v.match(in.targetPort), v.mtls, http))
		}
	}
	passthrough := func(name string, port uint32, v inboundVariant) *listenerv3.FilterChain {
		if v.refuse {
			return refusedChain(v.chainName(name), v.match(port))
		}
		fc := &listenerv3.FilterChain{
			Name:             v.chainName(name),
			FilterChainMatch: v.match(port),
			Filters:          append(inboundRBAC(policies, true).networkFilters(), tcpProxyFilter(InboundPassthroughCluster, InboundPassthroughCluster)),
		}
		if v.mtls {
			fc.TransportSocket = downstreamMTLS(false, workloadSDSOf(proxy.AgentSDS()))
		}
		return fc
	}
	// Ports the workload's policy names that no service covers keep their own
	// mode, as in Istio (say a STRICT workload with a plaintext metrics port).
	for _, port := range mtls.Ports() {
		if _, served := inspect[port]; served || mtls.ForPort(port) == mtls.Mode {
			continue
		}
		variants := inboundVariants(mtls.ForPort(port), identity, false)
		inspect[port] = inspects(variants)
		for _, v := range variants {
			l.FilterChains = append(l.FilterChains, passthrough("inbound-passthrough-"+itoa(port), port, v))
		}
	}
	variants := inboundVariants(mtls.Mode, identity, false)
	portMatch := false
	for _, need := range inspect {
		portMatch = portMatch || need
	}
	httpInspector := inboundHTTPInspector(sniffed)
	if !portMatch && !inspects(variants) {
		l.DefaultFilterChain = passthrough("inbound-passthrough", 0, variants[0])
		if httpInspector != nil {
			l.ListenerFilters = append(l.ListenerFilters, httpInspector)
			applyDetectionTimeout(snap, l)
		}
		return withMeshTelemetry(snap, []*listenerv3.Listener{l})
	}
	for _, v := range variants {
		l.FilterChains = append(l.FilterChains, passthrough("inbound-passthrough", 0, v))
	}
	// tls_inspector first: the http_inspector leaves TLS connections alone.
	l.ListenerFilters = append(l.ListenerFilters, inboundTLSInspector(inspect, inspects(variants)))
	if httpInspector != nil {
		l.ListenerFilters = append(l.ListenerFilters, httpInspector)
	}
	// A client that sends nothing first (a plaintext client of a server-first
	// protocol such as MySQL on a PERMISSIVE port) is let through as plaintext
	// once the inspector gives up: after MeshConfig protocolDetectionTimeout
	// as in istiod (0s: never), else Envoy's default 15 s. STRICT and DISABLE
	// ports do not wait (Istio's advice for server-first protocols).
	l.ContinueOnListenerFiltersTimeout = true
	if t := snap.Mesh.GetProtocolDetectionTimeout(); t != nil {
		l.ListenerFiltersTimeout = t
	}
	return withMeshTelemetry(snap, []*listenerv3.Listener{l})
}

func inboundRouteConfig(in inboundPort, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name:             cluster,
		ValidateClusters: boolv(false),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound|http|" + itoa(in.targetPort),
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          dur(0),
				}},
			}},
		}},
	}
}

// sidecarIngressPorts: a Sidecar resource with ingress listeners replaces the
// inbound ports derived from the workload's services, as in Istio. Each port is
// forwarded to its defaultEndpoint; "0.0.0.0:<port>" (or none) means the pod's
// own address, anything else ("127.0.0.1:<port>") a fixed address. Returns nil
// when no Sidecar ingress applies.
func sidecarIngressPorts(snap *model.Snapshot, proxy *model.Proxy) []inboundPort {
	sc := snap.SidecarFor(proxy)
	if sc == nil || len(sc.Spec.GetIngress()) == 0 {
		return nil
	}
	out := []inboundPort{}
	seen := map[uint32]bool{}
	for _, in := range sc.Spec.GetIngress() {
		n := in.GetPort().GetNumber()
		if n == 0 || seen[n] {
			continue
		}
		seen[n] = true
		ep := in.GetDefaultEndpoint()
		host, port, err := net.SplitHostPort(ep)
		if err != nil || host == "0.0.0.0" || strings.HasPrefix(ep, "unix://") {
			ep = ""
		} else if p, err := strconv.Atoi(port); err == nil && p > 0 {
			ep = net.JoinHostPort(host, port)
		}
		out = append(out, inboundPort{
			port:       &model.Port{Name: in.GetPort().GetName(), Port: n, Protocol: model.ParseProtocol(in.GetPort().GetProtocol())},
			targetPort: n,
			endpoint:   ep,
		})
	}
	return out
}
