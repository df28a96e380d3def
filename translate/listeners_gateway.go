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
	for _, p := range gatewayPlans(snap, proxy) {
		if p.bindPort < 1024 && !seen[p.bindPort] {
			seen[p.bindPort] = true
			out = append(out, p.bindPort)
		}
	}
	sortU32(out)
	return out
}

// GatewayListeners builds one bound listener per (bind, port) of the servers
// of the Gateways that select the proxy (gateway_plan.go): plain HTTP through
// RDS `http.<port>`; servers routed by SNI (listeners_gateway_tls.go); one TCP
// server (listeners_gateway_tcp.go). HTTP chains carry the
// RequestAuthentication (jwt.go) and AuthorizationPolicy (rbac.go) filters
// that select the gateway workload, TCP chains its AuthorizationPolicies.
func GatewayListeners(snap *model.Snapshot, proxy *model.Proxy) []*listenerv3.Listener {
	plans := gatewayPlans(snap, proxy)
	var authn, authz []*hcmv3.HttpFilter
	var tcpAuthz []*listenerv3.Filter
	if len(plans) > 0 {
		authn = jwtHTTPFilters(snap, proxy)
		// AuthorizationPolicies select the gateway workload like any other:
		// its namespace and labels, plus the root namespace's.
		policies := orderedAuthzPolicies(snap.AuthorizationPoliciesFor(proxy.Namespace, proxy.Labels))
		authz = inboundRBAC(policies, false).httpFilters()
		tcpAuthz = inboundRBAC(policies, true).networkFilters()
	}
	var out []*listenerv3.Listener
	for _, p := range plans {
		if privileged(proxy, p.bindPort) {
			continue
		}
		bindIP := "0.0.0.0"
		if proxy.GatewayBindIP != "" {
			bindIP = proxy.GatewayBindIP
		}
		if p.bind != "" {
			bindIP = p.bind
		}
		l := &listenerv3.Listener{
			Name:             p.listenerName(),
			Address:          socketAddress(bindIP, p.bindPort),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		}
		switch {
		case len(p.http) > 0:
			l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
				httpConnectionManagerFilter(hcmOptions{statPrefix: "outbound_" + l.Name, rds: p.httpRouteName(), gateway: true, routeFilters: true, authFilters: authn, authz: authz}),
			}}}
		case len(p.chains) > 0:
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspectorFilter()}
			l.FilterChains = gatewaySNIChains(snap, proxy, p, l.Name, authn, authz, tcpAuthz)
		case p.tcp != nil:
			if filters := gatewayTCPFilters(snap, *p.tcp, p.port); len(filters) > 0 {
				l.FilterChains = []*listenerv3.FilterChain{{Filters: append(append([]*listenerv3.Filter(nil), tcpAuthz...), filters...)}}
			}
		}
		// A listener without chains is refused by Envoy; the model warns
		// about servers no route is bound to (GatewayServerWithoutRoutes).
		if len(l.FilterChains) > 0 {
			out = append(out, l)
		}
	}
	return withMeshTelemetry(snap, out)
}
