package translate

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// MeshConfig enableTracing + defaultConfig.tracing.zipkin -> HCM tracing with
// Envoy's Zipkin tracer, as istiod configures it: spans as JSON v2 to
// <address>/api/v2/spans through the `zipkin` cluster, 128-bit trace IDs, B3
// headers propagated (the Zipkin tracer's default context format), random
// sampling defaultConfig.tracing.sampling (1% by default), every request with
// an x-request-id. istio-agent's bootstrap defines the `zipkin` cluster itself;
// other proxies get it from TelemetryClusters.

const (
	// ZipkinCluster is the collector's cluster, named as in Istio's bootstrap.
	ZipkinCluster        = "zipkin"
	zipkinTracerName     = "envoy.tracers.zipkin"
	zipkinCollectorPath  = "/api/v2/spans"
	zipkinConnectTimeout = time.Second // Istio's bootstrap value
	fullSamplingPercent  = 100.0
)

// hcmTracing is the tracing block of every HCM, nil when tracing is off.
func hcmTracing(mc *meshv1alpha1.MeshConfig) *hcmv3.HttpConnectionManager_Tracing {
	if _, _, ok := model.ZipkinCollector(mc); !ok {
		return nil
	}
	tr := mc.GetDefaultConfig().GetTracing()
	zipkin := &tracev3.ZipkinConfig{
		CollectorCluster:         ZipkinCluster,
		CollectorEndpoint:        zipkinCollectorPath,
		CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
		TraceId_128Bit:           true,
		SharedSpanContext:        boolv(false),
	}
	t := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: fullSamplingPercent},
		RandomSampling:  &typev3.Percent{Value: model.TracingSampling(mc)},
		OverallSampling: &typev3.Percent{Value: fullSamplingPercent},
		Provider: &tracev3.Tracing_Http{
			Name:       zipkinTracerName,
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAnyDeterministic(zipkin)},
		},
		CustomTags: customTags(tr),
	}
	if n := tr.GetMaxPathTagLength(); n > 0 {
		t.MaxPathTagLength = u32(n)
	}
	return t
}

// customTags translates defaultConfig.tracing.customTags (literal, environment,
// request header), sorted by tag for stable output. A tag Envoy would refuse
// (an empty or invalid header name, say) is left out rather than letting it
// reject every listener of the proxy.
func customTags(tr *meshv1alpha1.Tracing) []*tracingv3.CustomTag {
	var out []*tracingv3.CustomTag
	for _, name := range sortedKeys(tr.GetCustomTags()) {
		ct := tr.GetCustomTags()[name]
		tag := &tracingv3.CustomTag{Tag: name}
		switch {
		case ct.GetLiteral() != nil:
			tag.Type = &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: ct.GetLiteral().GetValue()}}
		case ct.GetEnvironment() != nil:
			tag.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{
				Name: ct.GetEnvironment().GetName(), DefaultValue: ct.GetEnvironment().GetDefaultValue()}}
		case ct.GetHeader() != nil:
			tag.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{
				Name: ct.GetHeader().GetName(), DefaultValue: ct.GetHeader().GetDefaultValue()}}
		default:
			continue
		}
		if tag.ValidateAll() != nil {
			continue
		}
		out = append(out, tag)
	}
	return out
}

// zipkinCluster reaches the collector: STATIC for an IP, STRICT_DNS for a name
// (as Istio's bootstrap does, so the proxy resolves it like its app would).
func zipkinCluster(host string, port uint32) *clusterv3.Cluster {
	typ := clusterv3.Cluster_STRICT_DNS
	if model.IsIP(host) {
		typ = clusterv3.Cluster_STATIC
	}
	return &clusterv3.Cluster{
		Name:                 ZipkinCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       dur(zipkinConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: ZipkinCluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(host, port),
			}}}},
		}}},
	}
}
