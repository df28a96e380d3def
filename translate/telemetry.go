package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Data-plane telemetry from MeshConfig, as istiod configures it without the
// Telemetry API:
//
//	stats listener 0.0.0.0:15090 /stats/prometheus   telemetry_stats.go
//	accessLogFile, accessLogEncoding, accessLogFormat telemetry_accesslog.go
//	enableTracing, defaultConfig.tracing (zipkin)     telemetry_tracing.go
//
// Access logs and tracing go on every HTTP connection manager and tcp_proxy of
// the proxy's listeners (sidecar outbound and inbound, gateway) but the stats
// listener's own.

// withMeshTelemetry adds the mesh's access log and tracing to every HTTP
// connection manager and tcp_proxy in ls (changed in place and returned).
//
// It is one pass over built listeners rather than an option of each filter
// builder: a dozen builders across the listener and route files make
// tcp_proxy and HCM filters, and "every one of them logs" then holds by
// construction, also for filter chains added later. With neither access logs
// nor tracing configured (the default) it returns at once.
//
// The fields are added without decoding the filters: protobuf defines the
// concatenation of two encoded messages as their merge (repeated fields
// appended, absent singular ones set), so the encoded access_log/tracing
// fields, built once, are appended to each filter's encoded config. Decoding
// and re-encoding every filter instead made building a 1,000-service mesh's
// outbound listeners 2.3x slower (BenchmarkSidecarOutboundListenersTelemetry).
func withMeshTelemetry(snap *model.Snapshot, ls []*listenerv3.Listener) []*listenerv3.Listener {
	logs := accessLogs(snap.Mesh)
	tracing := hcmTracing(snap.Mesh)
	if len(logs) == 0 && tracing == nil {
		return ls
	}
	hcm := &hcmv3.HttpConnectionManager{AccessLog: logs, Tracing: tracing}
	if tracing != nil {
		// Envoy's default, said out loud: the request ID carries the sampling
		// decision along the trace.
		hcm.GenerateRequestId = boolv(true)
	}
	extra := map[string][]byte{
		anyTypeURL(hcm):                    mustMarshal(hcm),
		anyTypeURL(&tcpproxyv3.TcpProxy{}): mustMarshal(&tcpproxyv3.TcpProxy{AccessLog: logs}),
	}
	for _, l := range ls {
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if add := extra[tc.GetTypeUrl()]; len(add) > 0 {
					v := make([]byte, 0, len(tc.GetValue())+len(add))
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{
						TypeUrl: tc.GetTypeUrl(), Value: append(append(v, tc.GetValue()...), add...)}}
				}
			}
		}
	}
	return ls
}

func anyTypeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// mustMarshal encodes m deterministically (see mustAnyDeterministic).
func mustMarshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err) // only with a nil or broken message: a programming error
	}
	return b
}

// mustAnyDeterministic marshals with sorted map keys: the access log's JSON
// format is a Struct (a map), and the xds layer hashes resource bytes to tell
// a change from a rebuild, so the bytes must not depend on map order.
func mustAnyDeterministic(m proto.Message) *anypb.Any {
	return &anypb.Any{TypeUrl: anyTypeURL(m), Value: mustMarshal(m)}
}
