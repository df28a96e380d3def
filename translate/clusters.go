package translate

import (
	"math"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// defaultConnectTimeout is MeshConfig.connectTimeout's default in Istio.
const defaultConnectTimeout = 10 * time.Second

// OutboundClusters builds one EDS cluster per service port, plus one per
// DestinationRule subset, for every service in the snapshot. It depends on the
// snapshot only, so all sidecars and gateways share its output.
func OutboundClusters(snap *model.Snapshot) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, svc := range snap.Services() {
		dr := snap.DestinationRule(svc.Hostname)
		for _, port := range svc.Ports {
			base := trafficPolicyForPort(model.HostTrafficPolicy(dr), port.Port)
			eps := snap.Endpoints(svc.Hostname)
			out = append(out, serviceCluster(OutboundClusterName(port.Port, "", svc.Hostname), svc, port, base, eps, nil))
			for _, ss := range model.Subsets(dr) {
				policy := mergeTrafficPolicy(base, trafficPolicyForPort(ss.GetTrafficPolicy(), port.Port))
				out = append(out, serviceCluster(OutboundClusterName(port.Port, ss.GetName(), svc.Hostname), svc, port, policy, eps, ss.GetLabels()))
			}
		}
	}
	return out
}

func edsCluster(name string, port *model.Port, policy *networkingapi.TrafficPolicy) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       dur(defaultConnectTimeout),
		CircuitBreakers:      defaultCircuitBreakers(),
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{},
	}
	applyLoadBalancer(c, policy.GetLoadBalancer())
	if port.Protocol.IsHTTP2() {
		c.TypedExtensionProtocolOptions = http2ProtocolOptions()
	}
	return c
}

// defaultCircuitBreakers lifts Envoy's low defaults (1024 pending/requests), as
// Istio does: limits are opt-in through DestinationRule connectionPool.
func defaultCircuitBreakers() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     u32(math.MaxUint32),
		MaxPendingRequests: u32(math.MaxUint32),
		MaxRequests:        u32(math.MaxUint32),
		MaxRetries:         u32(math.MaxUint32),
		TrackRemaining:     true,
	}}}
}

func http2ProtocolOptions() map[string]*anypb.Any {
	return map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttp.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		}),
	}
}

// StaticClusters are the clusters every proxy has whatever the mesh holds.
func StaticClusters() []*clusterv3.Cluster {
	return []*clusterv3.Cluster{
		{
			Name:                 BlackHoleCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       dur(defaultConnectTimeout),
		},
		{
			Name:                 PassthroughCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
			ConnectTimeout:       dur(defaultConnectTimeout),
			CircuitBreakers:      defaultCircuitBreakers(),
		},
	}
}

// InboundClusters builds `inbound|<port>||` for each port the proxy's own
// workload serves, plus InboundPassthroughCluster. They are ORIGINAL_DST clusters
// bound to 127.0.0.6, so the app sees the connection arrive at its own address.
func InboundClusters(snap *model.Snapshot, proxy *model.Proxy) []*clusterv3.Cluster {
	out := []*clusterv3.Cluster{inboundOriginalDst(InboundPassthroughCluster)}
	for _, in := range inboundPorts(snap, proxy) {
		c := inboundOriginalDst(InboundClusterName(in.targetPort))
		if in.port.Protocol.IsHTTP2() {
			c.TypedExtensionProtocolOptions = http2ProtocolOptions()
		}
		out = append(out, c)
	}
	return out
}

func inboundOriginalDst(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       dur(defaultConnectTimeout),
		CircuitBreakers:      defaultCircuitBreakers(),
		UpstreamBindConfig:   &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: inboundBindAddress, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}},
	}
}
