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
		name := OutboundHTTPListenerName(port)
		out = append(out, &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress(bindIP, port),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
				httpConnectionManagerFilter(hcmOptions{statPrefix: "outbound_" + name, rds: GatewayHTTPRouteName(port), gateway: true, routeFilters: true, authFilters: authn, authz: authz}),
			}}},
		})
	}
	out = append(out, gatewayTLSListeners(snap, proxy, bindIP, authn, authz)...)
	return withMeshTelemetry(snap, out)
}
