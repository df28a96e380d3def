package model

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Mesh ConfigMap coordinates, as istiod reads them.
const (
	MeshConfigMapName      = "istio"
	MeshConfigMapNamespace = "istio-system"
	MeshConfigMapKey       = "mesh"
)

// DefaultTracingSampling is the percentage of requests traced when
// defaultConfig.tracing.sampling is unset (istiod's PILOT_TRACE_SAMPLING default).
const DefaultTracingSampling = 1.0

// meshConfigFrom reads MeshConfig from the `istio` ConfigMap over Istio's defaults.
// A broken mesh config is reported and the defaults apply; fields that are
// valid YAML but unusable (a bad access log format, an unsupported tracer) are
// warnings, and the rest of the mesh config still applies.
func meshConfigFrom(cms []*corev1.ConfigMap) (*meshv1alpha1.MeshConfig, []ConfigError) {
	mc := defaultMeshConfig()
	for _, cm := range cms {
		if cm.Name != MeshConfigMapName || cm.Namespace != MeshConfigMapNamespace {
			continue
		}
		raw, ok := cm.Data[MeshConfigMapKey]
		if !ok {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(raw))
		var keys map[string]json.RawMessage
		if err == nil {
			// protojson resets the message it fills, so the document is read
			// into an empty one and Istio's defaults put back for what it
			// leaves out (below). A `null` document is an empty mesh config.
			if string(js) != "null" {
				err = json.Unmarshal(js, &keys)
			}
		}
		user := &meshv1alpha1.MeshConfig{}
		if err == nil && len(keys) > 0 {
			err = protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, user)
		}
		if err != nil {
			return defaultMeshConfig(), []ConfigError{meshError("", "InvalidMeshConfig", err.Error(), false)}
		}
		var errs []ConfigError
		for _, f := range ReportIgnoredFields(user, "") {
			errs = append(errs, meshError(f.Path, "IgnoredField", f.Message, true))
		}
		mc = withMeshDefaults(user, keys)
		return mc, append(errs, validateMeshTelemetry(mc)...)
	}
	return mc, nil
}

// withMeshDefaults fills in Istio's defaults for the fields the document left
// out. An absent outboundTrafficPolicy must stay ALLOW_ANY: the proto's zero
// mode is REGISTRY_ONLY, so reading it as zero would cut every mesh with a
// mesh config (say, only accessLogFile) off from external hosts.
func withMeshDefaults(mc *meshv1alpha1.MeshConfig, keys map[string]json.RawMessage) *meshv1alpha1.MeshConfig {
	def := defaultMeshConfig()
	if mc.TrustDomain == "" {
		mc.TrustDomain = def.TrustDomain
	}
	if mc.RootNamespace == "" {
		mc.RootNamespace = def.RootNamespace
	}
	if mc.OutboundTrafficPolicy == nil {
		mc.OutboundTrafficPolicy = def.OutboundTrafficPolicy
	}
	// A plain bool: only the document's keys tell "false" from "not given".
	if !hasKey(keys, "enableTracing", "enable_tracing") {
		mc.EnableTracing = def.EnableTracing
	}
	return mc
}

func hasKey(keys map[string]json.RawMessage, names ...string) bool {
	for _, n := range names {
		if _, ok := keys[n]; ok {
			return true
		}
	}
	return false
}

func meshError(field, code, msg string, warning bool) ConfigError {
	f := "data.mesh"
	if field != "" {
		f += " " + field
	}
	return ConfigError{Kind: "ConfigMap", Namespace: MeshConfigMapNamespace, Name: MeshConfigMapName,
		Field: f, Code: code, Message: msg, Warning: warning}
}

// validateMeshTelemetry reports the telemetry fields mizzen reads but cannot
// use as given; translate then falls back the same way (AccessLogJSONFormat,
// ZipkinCollector, TracingSampling), so what is reported is what happens.
func validateMeshTelemetry(mc *meshv1alpha1.MeshConfig) []ConfigError {
	var errs []ConfigError
	if mc.GetAccessLogFile() != "" && mc.GetAccessLogEncoding() == meshv1alpha1.MeshConfig_JSON {
		if _, err := AccessLogJSONFormat(mc); err != nil {
			errs = append(errs, meshError("accessLogFormat", "InvalidAccessLogFormat",
				err.Error()+"; Istio's default JSON format is used", true))
		}
	}
	tr := mc.GetDefaultConfig().GetTracing()
	if !mc.GetEnableTracing() || tr == nil {
		return errs
	}
	// Every tracer but zipkin (lightstep, datadog, stackdriver,
	// openCensusAgent) is reported here, by the oneof's name.
	switch tr.GetTracer().(type) {
	case nil, *meshv1alpha1.Tracing_Zipkin_:
	default:
		m := tr.ProtoReflect()
		name := m.WhichOneof(m.Descriptor().Oneofs().ByName("tracer")).JSONName()
		errs = append(errs, meshError("defaultConfig.tracing."+name, "UnsupportedTracer",
			"tracer "+name+" is not supported (only zipkin); tracing is off", true))
	}
	if addr := tr.GetZipkin().GetAddress(); addr != "" {
		if _, _, err := splitCollector(addr); err != nil {
			errs = append(errs, meshError("defaultConfig.tracing.zipkin.address", "InvalidTracingAddress",
				err.Error()+"; tracing is off", true))
		}
	}
	if s := tr.GetSampling(); s < 0 || s > 100 {
		errs = append(errs, meshError("defaultConfig.tracing.sampling", "InvalidTracingSampling",
			fmt.Sprintf("sampling %v is outside 0-100; %v%% is used", s, DefaultTracingSampling), true))
	}
	return errs
}

// AccessLogJSONFormat is the JSON access log format of accessLogFormat: a JSON
// object whose values are Envoy format strings (or nested objects of them).
// nil with no error means none was given (Istio's default applies).
func AccessLogJSONFormat(mc *meshv1alpha1.MeshConfig) (*structpb.Struct, error) {
	f := mc.GetAccessLogFormat()
	if f == "" {
		return nil, nil
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(f), &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("accessLogFormat is not a JSON object: %q", f)
	}
	s, err := structpb.NewStruct(obj)
	if err != nil {
		return nil, fmt.Errorf("accessLogFormat: %v", err)
	}
	return s, nil
}

// ZipkinCollector is where proxies send spans: defaultConfig.tracing.zipkin.address
// as host and port, when enableTracing is on. ok is false when tracing is off,
// no address is given (mizzen has no default collector, unlike istiod's
// zipkin.istio-system:9411: a proxy is not pointed at a host nobody named), or
// the address is unusable (reported by validateMeshTelemetry).
func ZipkinCollector(mc *meshv1alpha1.MeshConfig) (host string, port uint32, ok bool) {
	if !mc.GetEnableTracing() {
		return "", 0, false
	}
	addr := mc.GetDefaultConfig().GetTracing().GetZipkin().GetAddress()
	if addr == "" {
		return "", 0, false
	}
	host, port, err := splitCollector(addr)
	return host, port, err == nil
}

func splitCollector(addr string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q is not host:port: %v", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return "", 0, fmt.Errorf("address %q is not host:port with a port in 1-65535", addr)
	}
	return host, uint32(port), nil
}

// TracingSampling is the percentage of requests a proxy starts a trace for:
// defaultConfig.tracing.sampling, Istio's 1% when unset (0) or out of range.
func TracingSampling(mc *meshv1alpha1.MeshConfig) float64 {
	s := mc.GetDefaultConfig().GetTracing().GetSampling()
	if s <= 0 || s > 100 {
		return DefaultTracingSampling
	}
	return s
}

// defaultMeshConfig is Istio's MeshConfig defaults for the fields mizzen reads.
func defaultMeshConfig() *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{
		TrustDomain:           "cluster.local",
		RootNamespace:         "istio-system",
		OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY},
		EnableTracing:         true,
	}
}
