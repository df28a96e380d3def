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
// nor tracing configured (the default) it returns at once; otherwise each
// filter is decoded and encoded once more, in the per-scope build that all
// proxies of a scope share.
func withMeshTelemetry(snap *model.Snapshot, ls []*listenerv3.Listener) []*listenerv3.Listener {
	logs := accessLogs(snap.Mesh)
	tracing := hcmTracing(snap.Mesh)
	if len(logs) == 0 && tracing == nil {
		return ls
	}
	for _, l := range ls {
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				switch f.GetName() {
				case hcmFilterName:
					m := &hcmv3.HttpConnectionManager{}
					retype(f, m, func() {
						m.AccessLog = append(m.AccessLog, logs...)
						if tracing != nil {
							m.Tracing = tracing
							// Envoy's default, said out loud: the request ID
							// carries the sampling decision along the trace.
							m.GenerateRequestId = boolv(true)
						}
					})
				case tcpProxyFilterName:
					m := &tcpproxyv3.TcpProxy{}
					retype(f, m, func() { m.AccessLog = append(m.AccessLog, logs...) })
				}
			}
		}
	}
	return ls
}

// retype decodes a filter's typed config into m, lets edit change it and
// encodes it back. A config that does not decode is left alone: it came from
// our own builders, so that is a programming error the golden tests catch.
func retype(f *listenerv3.Filter, m proto.Message, edit func()) {
	if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
		return
	}
	edit()
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAnyDeterministic(m)}
}

// mustAnyDeterministic marshals with sorted map keys: the access log's JSON
// format is a Struct (a map), and the xds layer hashes resource bytes to tell
// a change from a rebuild, so the bytes must not depend on map order.
func mustAnyDeterministic(m proto.Message) *anypb.Any {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err) // only with a nil or broken message: a programming error
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}
