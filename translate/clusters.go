package translate

import (
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// defaultConnectTimeout is MeshConfig.connectTimeout's default in Istio.
const defaultConnectTimeout = 10 * time.Second

// OutboundClusters builds the outbound clusters as a proxy sees them whose
// namespace holds no DestinationRule and is named by no exportTo (the view of
// snap.DestinationRule). Proxies of other namespaces may see other rules: use
// OutboundClustersFor, shared per snap.DestinationRuleViewKey(namespace).
func OutboundClusters(snap *model.Snapshot) []*clusterv3.Cluster {
	// A View follows its namespace's rules: a DestinationRule in a client
	// namespace for another namespace's host (the egress gateway's subset).
	return OutboundClustersFor(snap, snap.ViewerNamespace())
}

// OutboundClustersFor builds one EDS cluster per service port, plus one per
// DestinationRule subset, for every service in the snapshot, with the
// DestinationRules a proxy in proxyNamespace sees (exportTo, namespace order:
// model.Snapshot.DestinationRuleFor). Proxies whose namespaces share a
// DestinationRuleViewKey get identical output.
func OutboundClustersFor(snap *model.Snapshot, proxyNamespace string) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, svc := range snap.Services() {
		dr := snap.DestinationRuleFor(svc.Hostname, proxyNamespace)
		for _, port := range svc.Ports {
			eps := snap.Endpoints(svc.Hostname)
			build := func(subset string, labels map[string]string) *clusterv3.Cluster {
				policy := clusterTrafficPolicy(dr, subset, port.Port)
				c := serviceCluster(snap, OutboundClusterName(port.Port, subset, svc.Hostname), svc, port, policy, eps, labels)
				if usesEDS(svc) {
					applyLocalityCluster(snap, c, policy)
				}
				applyClusterTLS(snap, c, svc, port, subset, policy.GetTls(), upstreamHTTP2(port, snap.Mesh, policy.GetConnectionPool()))
				if dr != nil {
					// Istio's origin metadata: proxy-config and explain name the rule.
					c.Metadata = istioConfigMetadata("destination-rule", dr.Namespace, dr.Name)
				}
				return c
			}
			out = append(out, build("", nil))
			for _, ss := range model.Subsets(dr) {
				out = append(out, build(ss.GetName(), ss.GetLabels()))
			}
		}
	}
	return out
}

// edsCluster builds an outbound EDS cluster and applies its traffic policy:
// upstream protocol (port protocol, h2UpgradePolicy), connection pool, outlier
// detection (which sets the panic threshold), load balancer. istiod upgrades to
// HTTP/2 after the connection pool, so an upgraded cluster there misses
// maxConcurrentStreams; here it gets it.
func edsCluster(snap *model.Snapshot, name string, port *model.Port, policy *networkingapi.TrafficPolicy) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		CommonLbConfig:       &clusterv3.Cluster_CommonLbConfig{},
	}
	var opts *upstreamhttp.HttpProtocolOptions
	// HTTP/2 first, so that connectionPool.http.maxConcurrentStreams finds it.
	if upstreamHTTP2(port, snap.Mesh, policy.GetConnectionPool()) {
		opts = http2Options()
	} else if port.Protocol.IsSniffed() && !snap.ForRouter() {
		// A sidecar's HTTP branch forwards in the protocol the caller spoke
		// (h2c stays HTTP/2); the TCP branch ignores HTTP options. Gateways
		// keep HTTP/1.1, as in istiod: their clients' h2 says nothing of the app.
		opts = downstreamProtocolOptions()
	}
	opts = applyConnectionPool(c, opts, snap.Mesh, policy.GetConnectionPool())
	opts = tlsHTTPOptions(opts, port, policy.GetTls())
	c.TypedExtensionProtocolOptions = httpProtocolOptions(opts)
	applyOutlierDetection(c, policy.GetOutlierDetection())
	applyLoadBalancer(c, policy.GetLoadBalancer())
	return c
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
		if in.endpoint != "" {
			c = inboundStatic(InboundClusterName(in.targetPort), in.endpoint)
		}
		switch {
		case in.port.Protocol.IsHTTP2():
			c.TypedExtensionProtocolOptions = http2ProtocolOptions()
		case in.port.Protocol.IsSniffed():
			c.TypedExtensionProtocolOptions = httpProtocolOptions(downstreamProtocolOptions())
		}
		out = append(out, c)
	}
	return out
}

// inboundStatic forwards to a fixed address (a Sidecar ingress listener's
// defaultEndpoint such as 127.0.0.1:8080).
func inboundStatic(name, hostPort string) *clusterv3.Cluster {
	host, port, _ := net.SplitHostPort(hostPort)
	p, _ := strconv.Atoi(port)
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       dur(defaultConnectTimeout),
		CircuitBreakers:      defaultCircuitBreakers(),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(host, uint32(p)),
			}}}},
		}}},
	}
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
