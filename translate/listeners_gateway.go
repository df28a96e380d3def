package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// GatewayListeners builds one bound listener `0.0.0.0_<port>` per plain-HTTP port
// (and per HTTPS port: listeners_gateway_tls.go) of the Gateways that select the proxy, routing through RDS `http.<port>`, with
// the RequestAuthentication (jwt.go) and AuthorizationPolicy (rbac.go) filters
// that select the gateway workload.
// GatewayBindPort is the port a gateway listens on for a Gateway server
// port: the targetPort of the gateway's own Service port of that number (80 →
// 8080 and 443 → 8443 in Istio's gateway charts, so the proxy needs no
// privileged port), found through the Service instances at the proxy's IPs;
// else the server port itself. Listener and HTTP route names use it too, as
// istiod's (http.8080).
func GatewayBindPort(snap *model.Snapshot, proxy *model.Proxy, serverPort uint32) uint32 {
	for _, ip := range proxy.InstanceIPs {
		for _, in := range snap.InstancesAt(ip) {
			if in.Service.Namespace != proxy.Namespace {
				continue
			}
			for _, p := range in.Service.Ports {
				if p.Port != serverPort {
					continue
				}
				if target, ok := in.Endpoint.Ports[p.Name]; ok && target != 0 {
					return target
				}
			}
		}
	}
	return serverPort
}

// privileged: an unprivileged gateway cannot bind port.
func privileged(proxy *model.Proxy, port uint32) bool { return proxy.Unprivileged && port < 1024 }

// PrivilegedGatewayPorts lists the ports an unprivileged gateway's servers
// would bind below 1024, which it is not given (GatewayListeners skips them).
func PrivilegedGatewayPorts(snap *model.Snapshot, proxy *model.Proxy) []uint32 {
	if !proxy.Unprivileged {
		return nil
	}
	seen := map[uint32]bool{}
	var out []uint32
	add := func(port uint32) {
		if bind := GatewayBindPort(snap, proxy, port); bind < 1024 && !seen[bind] {
			seen[bind] = true
			out = append(out, bind)
		}
	}
	for port := range gatewayHTTPServers(snap, proxy) {
		add(port)
	}
	for _, c := range gatewayTLSChains(snap, proxy) {
		add(c.port)
	}
	sortU32(out)
	return out
}

func GatewayListeners(snap *model.Snapshot, proxy *model.Proxy) []*listenerv3.Listener {
	bindIP := "0.0.0.0"
	if proxy.GatewayBindIP != "" {
		bindIP = proxy.GatewayBindIP
	}
	byPort := gatewayHTTPServers(snap, proxy)
	var ports []uint32
	for p := range byPort {
		ports = append(ports, p)
	}
	sortU32(ports)
	var out []*listenerv3.Listener
	tlsChains := gatewayTLSChains(snap, proxy)
	var authn, authz []*hcmv3.HttpFilter
	if len(ports) > 0 || len(tlsChains) > 0 {
		authn = jwtHTTPFilters(snap, proxy)
		// AuthorizationPolicies select the gateway workload like any other:
		// its namespace and labels, plus the root namespace's.
		authz = inboundRBAC(orderedAuthzPolicies(snap.AuthorizationPoliciesFor(proxy.Namespace, proxy.Labels)), false).httpFilters()
	}
	for _, port := range ports {
		bind := GatewayBindPort(snap, proxy, port)
		if privileged(proxy, bind) {
			continue
		}
		name := OutboundHTTPListenerName(bind)
		out = append(out, &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress(bindIP, bind),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
				httpConnectionManagerFilter(hcmOptions{statPrefix: "outbound_" + name, rds: GatewayHTTPRouteName(bind), gateway: true, routeFilters: true, authFilters: authn, authz: authz}),
			}}},
		})
	}
	out = append(out, gatewayTLSListeners(snap, proxy, bindIP, authn, authz)...)
	return withMeshTelemetry(snap, out)
}
