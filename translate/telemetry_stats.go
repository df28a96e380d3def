package translate

import (
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// The Prometheus stats listener every Istio proxy has: 0.0.0.0:15090 (a
// gateway's MIZZEN_GATEWAY_BIND_IP instead, like its other listeners) serving
// /stats/prometheus from Envoy's admin interface through the static cluster
// prometheus_stats. istio-agent puts both in its bootstrap; mizzen's proxies
// bootstrap straight to mizzen, so mizzen sends them — except to proxies whose
// bootstrap is istio-agent's (node metadata ISTIO_VERSION): Envoy would refuse
// a second listener on 15090 and a dynamic cluster named like a static one.
//
// The admin address is the proxy's, not mizzen's, to know: node metadata
// MIZZEN_ADMIN_ADDRESS ("ip:port"), else Istio's 127.0.0.1:15000.

const (
	// StatsPort is Istio's Envoy Prometheus port (excluded from inbound capture).
	StatsPort = 15090
	// StatsListener and StatsCluster are named after Istio's bootstrap cluster.
	StatsListener = "prometheus_stats"
	StatsCluster  = "prometheus_stats"
	// DefaultAdminAddress is where istio-agent starts Envoy's admin.
	DefaultAdminAddress = "127.0.0.1:15000"
	statsPath           = "/stats/prometheus"
	// statsConnectTimeout is Istio's bootstrap value: the admin is local.
	statsConnectTimeout = 250 * time.Millisecond
)

// TelemetryKey is what TelemetryListeners and TelemetryClusters depend on
// besides the mesh config, so the xds layer builds them once per distinct key.
func TelemetryKey(p *model.Proxy) string {
	key := string(p.Type) + "|" + p.GatewayBindIP + "|" + adminAddress(p)
	if bootstrapHasTelemetry(p) {
		key += "|istio-agent"
	}
	return key
}

// TelemetryListeners is the proxy's stats listener (none under istio-agent).
func TelemetryListeners(proxy *model.Proxy) []*listenerv3.Listener {
	if bootstrapHasTelemetry(proxy) {
		return nil
	}
	bindIP := "0.0.0.0"
	if proxy.Type == model.RouterProxy && proxy.GatewayBindIP != "" {
		bindIP = proxy.GatewayBindIP
	}
	// Only /stats/prometheus: the admin interface can also change log levels
	// or stop Envoy, and 15090 is reachable from outside the pod.
	rc := &routev3.RouteConfiguration{
		Name: StatsListener,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "backend",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: statsPath}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: StatsCluster},
				}},
			}},
		}},
	}
	return []*listenerv3.Listener{{
		Name:             StatsListener,
		Address:          socketAddress(bindIP, StatsPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
			httpConnectionManagerFilter(hcmOptions{statPrefix: "stats", inline: rc}),
		}}},
	}}
}

// TelemetryClusters are prometheus_stats (to the proxy's admin) and, with
// tracing on, the Zipkin collector's cluster; none under istio-agent, whose
// bootstrap has both.
func TelemetryClusters(snap *model.Snapshot, proxy *model.Proxy) []*clusterv3.Cluster {
	if bootstrapHasTelemetry(proxy) {
		return nil
	}
	out := []*clusterv3.Cluster{statsCluster(adminAddress(proxy))}
	if host, port, ok := model.ZipkinCollector(snap.Mesh); ok {
		out = append(out, zipkinCluster(host, port))
	}
	return out
}

func statsCluster(admin string) *clusterv3.Cluster {
	host, p, _ := net.SplitHostPort(admin)
	port, _ := strconv.Atoi(p)
	c := &clusterv3.Cluster{
		Name:                 StatsCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       dur(statsConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: StatsCluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(host, uint32(port)),
			}}}},
		}}},
	}
	// istio-init sends the proxy's own connections to a non-loopback local
	// address (an admin on the pod IP) into virtualInbound; from 127.0.0.6, the
	// inbound clusters' source, the capture lets them through untouched.
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		c.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{
			Address: inboundBindAddress, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}
	}
	return c
}

func adminAddress(p *model.Proxy) string {
	if p.AdminAddress != "" {
		return p.AdminAddress
	}
	return DefaultAdminAddress
}

// bootstrapHasTelemetry: istio-agent (which sets ISTIO_VERSION) bootstraps
// Envoy with the stats listener, prometheus_stats and zipkin already there.
func bootstrapHasTelemetry(p *model.Proxy) bool { return p.IstioVersion != "" }
