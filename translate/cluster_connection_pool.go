package translate

import (
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// DestinationRule connectionPool → cluster, as istiod's applyConnectionPool does:
//
//	tcp.maxConnections            circuit_breakers.thresholds[0].max_connections
//	tcp.connectTimeout            connect_timeout (default: meshConfig.connectTimeout, else 10s)
//	tcp.tcpKeepalive              upstream_connection_options.tcp_keepalive (over meshConfig.tcpKeepalive,
//	                              field by field; time and interval in whole seconds)
//	tcp.maxConnectionDuration     HttpProtocolOptions.common_http_protocol_options.max_connection_duration
//	tcp.idleTimeout               ... .common_http_protocol_options.idle_timeout, when http.idleTimeout is unset
//	http.http1MaxPendingRequests  circuit_breakers.thresholds[0].max_pending_requests
//	http.http2MaxRequests         circuit_breakers.thresholds[0].max_requests
//	http.maxRetries               circuit_breakers.thresholds[0].max_retries
//	http.maxRequestsPerConnection ... .common_http_protocol_options.max_requests_per_connection
//	http.idleTimeout              ... .common_http_protocol_options.idle_timeout
//	http.maxConcurrentStreams     ... .explicit_http_config.http2_protocol_options.max_concurrent_streams (HTTP/2 clusters)
//	http.h2UpgradePolicy          UPGRADE: the cluster speaks HTTP/2 upstream (even on a non-HTTP port, as in
//	                              Istio); DO_NOT_UPGRADE: it does not, whatever meshConfig.h2UpgradePolicy says
//	http.useClientProtocol        ... .use_downstream_protocol_config
//
// Zero or unset counts keep Istio's defaults: every circuit breaker threshold at
// max uint32, so limits are opt-in (Envoy's own 1024 would bite busy services).
// Not translated yet: http.http2KeepAlive.

// httpProtocolOptionsKey is the typed_extension_protocol_options key Envoy
// reads upstream HTTP settings from.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// defaultCircuitBreakers lifts Envoy's low defaults (1024 pending/requests), as
// Istio does: limits are opt-in through DestinationRule connectionPool.
func defaultCircuitBreakers() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{defaultThresholds()}}
}

func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     u32(math.MaxUint32),
		MaxPendingRequests: u32(math.MaxUint32),
		MaxRequests:        u32(math.MaxUint32),
		MaxRetries:         u32(math.MaxUint32),
		TrackRemaining:     true,
	}
}

// applyConnectionPool sets circuit breakers, connect timeout, TCP keepalive and
// the upstream HTTP options of an outbound cluster. opts is the cluster's
// HttpProtocolOptions so far (nil: none); the result replaces it.
func applyConnectionPool(c *clusterv3.Cluster, opts *upstreamhttp.HttpProtocolOptions, mesh *meshv1alpha1.MeshConfig,
	cp *networkingapi.ConnectionPoolSettings,
) *upstreamhttp.HttpProtocolOptions {
	th := defaultThresholds()
	c.ConnectTimeout = dur(defaultConnectTimeout)
	if t := mesh.GetConnectTimeout(); t != nil {
		c.ConnectTimeout = t
	}
	h, t := cp.GetHttp(), cp.GetTcp()
	if n := h.GetHttp2MaxRequests(); n > 0 {
		th.MaxRequests = u32(uint32(n))
	}
	if n := h.GetHttp1MaxPendingRequests(); n > 0 {
		th.MaxPendingRequests = u32(uint32(n))
	}
	if n := h.GetMaxRetries(); n > 0 {
		th.MaxRetries = u32(uint32(n))
	}
	if n := t.GetMaxConnections(); n > 0 {
		th.MaxConnections = u32(uint32(n))
	}
	if ct := t.GetConnectTimeout(); ct != nil {
		c.ConnectTimeout = ct
	}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	applyTCPKeepalive(c, mesh.GetTcpKeepalive())
	applyTCPKeepalive(c, t.GetTcpKeepalive())

	idle := h.GetIdleTimeout()
	if idle == nil {
		idle = t.GetIdleTimeout()
	}
	maxConnDuration := t.GetMaxConnectionDuration()
	perConn := h.GetMaxRequestsPerConnection()
	streams := h.GetMaxConcurrentStreams()
	if idle != nil || maxConnDuration != nil || perConn > 0 {
		if opts == nil {
			opts = &upstreamhttp.HttpProtocolOptions{}
		}
		opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: idle, MaxConnectionDuration: maxConnDuration}
		if perConn > 0 {
			opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = u32(uint32(perConn))
		}
	}
	if h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 != nil && streams > 0 {
		h2.MaxConcurrentStreams = u32(uint32(streams))
	}
	if h.GetUseClientProtocol() {
		if opts == nil {
			opts = &upstreamhttp.HttpProtocolOptions{}
		}
		opts.UpstreamProtocolOptions = &upstreamhttp.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttp.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}
	}
	return opts
}

// applyTCPKeepalive turns SO_KEEPALIVE on and overrides the timers that ka sets,
// leaving earlier ones (mesh-wide) in place, as istiod does.
func applyTCPKeepalive(c *clusterv3.Cluster, ka *networkingapi.ConnectionPoolSettings_TCPSettings_TcpKeepalive) {
	if ka == nil {
		return
	}
	if c.UpstreamConnectionOptions == nil {
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{}}
	}
	k := c.UpstreamConnectionOptions.TcpKeepalive
	if ka.GetProbes() > 0 {
		k.KeepaliveProbes = u32(ka.GetProbes())
	}
	if ka.GetTime() != nil {
		k.KeepaliveTime = u32(uint32(ka.GetTime().GetSeconds()))
	}
	if ka.GetInterval() != nil {
		k.KeepaliveInterval = u32(uint32(ka.GetInterval().GetSeconds()))
	}
}

// upstreamHTTP2 reports whether the cluster speaks HTTP/2 to the upstream: the
// port's protocol says so, or h2UpgradePolicy asks for it (DestinationRule over
// meshConfig, as istiod's shouldH2Upgrade).
func upstreamHTTP2(port *model.Port, mesh *meshv1alpha1.MeshConfig, cp *networkingapi.ConnectionPoolSettings) bool {
	if port.Protocol.IsHTTP2() {
		return true
	}
	switch cp.GetHttp().GetH2UpgradePolicy() {
	case networkingapi.ConnectionPoolSettings_HTTPSettings_UPGRADE:
		return true
	case networkingapi.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
		return false
	}
	return port.Protocol.IsHTTP() && mesh.GetH2UpgradePolicy() == meshv1alpha1.MeshConfig_UPGRADE
}

func http2Options() *upstreamhttp.HttpProtocolOptions {
	return &upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	}
}

// downstreamProtocolOptions speaks upstream what the downstream spoke.
func downstreamProtocolOptions() *upstreamhttp.HttpProtocolOptions {
	return &upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttp.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	}
}

// http2ProtocolOptions is the typed_extension_protocol_options of a cluster that
// only needs to speak HTTP/2 upstream.
func http2ProtocolOptions() map[string]*anypb.Any { return httpProtocolOptions(http2Options()) }

// httpProtocolOptions marshals the options; Envoy requires an upstream protocol,
// so options that only carry common settings say HTTP/1.1 explicitly, as istiod does.
func httpProtocolOptions(opts *upstreamhttp.HttpProtocolOptions) map[string]*anypb.Any {
	if opts == nil {
		return nil
	}
	if opts.UpstreamProtocolOptions == nil {
		opts.UpstreamProtocolOptions = &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
					HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
				},
			},
		}
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: mustAny(opts)}
}
