package translate

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// gatewayServer is one Gateway server that applies to a gateway proxy.
type gatewayServer struct {
	gateway *networking.Gateway
	server  *networkingapi.Server
}

func (g gatewayServer) key() string { return g.gateway.Namespace + "/" + g.gateway.Name }

// GatewaysForProxy returns the Gateways whose workload selector matches the
// proxy's labels (an empty selector matches every gateway proxy).
func GatewaysForProxy(snap *model.Snapshot, proxy *model.Proxy) []*networking.Gateway {
	var out []*networking.Gateway
	for _, gw := range snap.Gateways {
		if model.LabelsMatch(gw.Spec.GetSelector(), proxy.Labels) {
			out = append(out, gw)
		}
	}
	return out
}

// GatewayRoutes builds `http.<port>` for every plain-HTTP port of the gateway
// proxy, and `https.<port>.<portName>.<gateway>.<ns>` for every HTTPS server
// it terminates (listeners_gateway_tls.go), `.<bind>` appended for servers
// with a bind address: one virtual host per host that a bound VirtualService
// shares with a server, routes of several VirtualServices merged oldest
// first, as Istio does.
func GatewayRoutes(snap *model.Snapshot, proxy *model.Proxy) []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	plans := gatewayPlans(snap, proxy)
	for _, p := range plans {
		if len(p.http) > 0 {
			out = append(out, gatewayRouteConfig(snap, proxy, p.httpRouteName(), p.port, p.http))
		}
	}
	for _, p := range plans {
		for _, c := range p.chains {
			if c.kind == model.ServerHTTPS {
				out = append(out, gatewayRouteConfig(snap, proxy, c.routeName, p.port, []gatewayServer{c.server}))
			}
		}
	}
	return out
}

// gatewayRouteConfig is one gateway route table for the servers sharing it.
func gatewayRouteConfig(snap *model.Snapshot, proxy *model.Proxy, name string, port uint32, servers []gatewayServer) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name, ValidateClusters: boolv(false), MaxDirectResponseBodySizeBytes: u32(maxDirectResponseBodyBytes)}
	vhosts := map[string]*routev3.VirtualHost{}
	var order []string
	for _, gs := range servers {
		scope := routeScope{port: port, gateways: map[string]bool{gs.key(): true}, sourceNS: proxy.Namespace, sourceLabel: proxy.Labels}
		for _, vs := range snap.VirtualServices {
			if !gatewaysSelect(vs.Spec.GetGateways(), vs.Namespace, scope.gateways) || len(vs.Spec.GetGateways()) == 0 {
				continue
			}
			for _, h := range vs.Spec.GetHosts() {
				host, ok := intersectServerHosts(gs, vs, model.ResolveHost(h, vs.Namespace))
				if !ok {
					continue
				}
				vh := vhosts[host]
				if vh == nil {
					vh = &routev3.VirtualHost{Name: model.HostPort(host, port), Domains: []string{host}}
					vhosts[host] = vh
					order = append(order, host)
				}
				if gs.server.GetTls().GetHttpsRedirect() {
					// Istio's httpsRedirect: every request on this server's
					// hosts gets a 301 to https before any route is consulted.
					vh.RequireTls = routev3.VirtualHost_ALL
				}
				vh.Routes = append(vh.Routes, virtualServiceRoutes(snap, vs, scope)...)
			}
		}
		if gs.server.GetTls().GetHttpsRedirect() {
			// A redirecting server answers 301 even with no VirtualService
			// bound yet, as Istio's does: a host of its own without routes.
			for _, sh := range gs.server.GetHosts() {
				host := sh
				if i := strings.Index(sh, "/"); i >= 0 {
					host = sh[i+1:]
				}
				if vhosts[host] != nil {
					continue
				}
				vhosts[host] = &routev3.VirtualHost{Name: model.HostPort(host, port), Domains: []string{host}, RequireTls: routev3.VirtualHost_ALL}
				order = append(order, host)
			}
		}
	}
	for _, h := range order {
		rc.VirtualHosts = append(rc.VirtualHosts, vhosts[h])
	}
	if len(rc.VirtualHosts) == 0 {
		rc.VirtualHosts = []*routev3.VirtualHost{{Name: model.HostPort("blackhole", port), Domains: []string{"*"}, Routes: []*routev3.Route{{
			Name:   "blackhole",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
		}}}}
	}
	return rc
}

// intersectServerHosts returns the host a VirtualService host serves on a Gateway
// server: the more specific of the two when one covers the other. Server hosts
// may carry a namespace restriction: "ns/host", "./host" (the Gateway's own
// namespace) or "*/host".
func intersectServerHosts(gs gatewayServer, vs *networking.VirtualService, vsHost string) (string, bool) {
	for _, sh := range gs.server.GetHosts() {
		ns, host := "*", sh
		if i := strings.Index(sh, "/"); i >= 0 {
			ns, host = sh[:i], sh[i+1:]
		}
		if ns == "." {
			ns = gs.gateway.Namespace
		}
		if ns != "*" && ns != vs.Namespace {
			continue
		}
		switch {
		case hostMatches(host, vsHost):
			return vsHost, true
		case hostMatches(vsHost, host):
			return host, true
		}
	}
	return "", false
}
