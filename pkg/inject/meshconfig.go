package inject

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// Istio's defaults for the proxy config the agent runs with. The injection
// template reads them (status port, interception mode, …) and PROXY_CONFIG
// carries only what differs from them.
func defaultProxyConfig() *meshv1alpha1.ProxyConfig {
	return &meshv1alpha1.ProxyConfig{
		ConfigPath:               "./etc/istio/proxy",
		ClusterName:              &meshv1alpha1.ProxyConfig_ServiceCluster{ServiceCluster: "istio-proxy"},
		DrainDuration:            durationpb.New(45 * time.Second),
		TerminationDrainDuration: durationpb.New(5 * time.Second),
		ProxyAdminPort:           15000,
		ControlPlaneAuthPolicy:   meshv1alpha1.AuthenticationPolicy_MUTUAL_TLS,
		DiscoveryAddress:         "istiod.istio-system.svc:15012",
		BinaryPath:               "/usr/local/bin/envoy",
		StatNameLength:           189,
		StatusPort:               15020,
	}
}

// defaultMeshConfig is Istio's mesh config without a ConfigMap, as far as
// injection reads it: the capture ports, trust domain, inbound traffic
// policy, Prometheus merge and the proxy defaults.
func defaultMeshConfig() *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{
		TrustDomain:            "cluster.local",
		RootNamespace:          "istio-system",
		ProxyListenPort:        15001,
		ProxyInboundListenPort: 15006,
		InboundTrafficPolicy:   &meshv1alpha1.MeshConfig_InboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_InboundTrafficPolicy_PASSTHROUGH},
		EnablePrometheusMerge:  wrapperspb.Bool(true),
		EnableAutoMtls:         wrapperspb.Bool(true),
		DefaultConfig:          defaultProxyConfig(),
	}
}

// istioMeshConfig reads MeshConfig YAML over Istio's defaults: fields set
// replace the defaults, defaultConfig is merged into the default proxy
// config (so setting one field keeps the others), as istiod reads it.
// Fields this version of the API does not know are skipped, as istiod skips
// them, and named in the note returned.
func istioMeshConfig(meshYAML string) (*meshv1alpha1.MeshConfig, string, error) {
	mc := defaultMeshConfig()
	if strings.TrimSpace(meshYAML) == "" {
		return mc, "", nil
	}
	var parsed meshv1alpha1.MeshConfig
	note := ""
	if err := unmarshalProtoYAML(meshYAML, &parsed, false); err != nil {
		if err2 := unmarshalProtoYAML(meshYAML, &parsed, true); err2 != nil {
			return nil, "", fmt.Errorf("mesh config: %w", err2)
		}
		note = fmt.Sprintf("mesh config: %v: ignored by the injector", err)
	}
	pc := mc.DefaultConfig
	proto.Merge(pc, parsed.GetDefaultConfig())
	parsed.DefaultConfig = nil
	proto.Merge(mc, &parsed)
	mc.DefaultConfig = pc
	return mc, note, nil
}

// mergeProxyConfig applies a proxy.istio.io/config annotation (ProxyConfig
// YAML) over the mesh's proxy config; the result is a new message.
func mergeProxyConfig(base *meshv1alpha1.ProxyConfig, y string) (*meshv1alpha1.ProxyConfig, error) {
	out := proto.Clone(base).(*meshv1alpha1.ProxyConfig)
	var over meshv1alpha1.ProxyConfig
	if err := unmarshalProtoYAML(y, &over, false); err != nil {
		return nil, err
	}
	proto.Merge(out, &over)
	return out, nil
}

func unmarshalProtoYAML(y string, m proto.Message, discardUnknown bool) error {
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(js)) == "null" {
		return nil
	}
	return protojson.UnmarshalOptions{DiscardUnknown: discardUnknown}.Unmarshal(js, m)
}

// withoutProxyDefaults is the proxy config with the fields that equal
// Istio's defaults cleared, for PROXY_CONFIG.
func withoutProxyDefaults(in *meshv1alpha1.ProxyConfig) *meshv1alpha1.ProxyConfig {
	if in == nil {
		return nil
	}
	pc := proto.Clone(in).(*meshv1alpha1.ProxyConfig)
	d := defaultProxyConfig()
	if pc.ConfigPath == d.ConfigPath {
		pc.ConfigPath = ""
	}
	if pc.BinaryPath == d.BinaryPath {
		pc.BinaryPath = ""
	}
	if pc.ControlPlaneAuthPolicy == d.ControlPlaneAuthPolicy {
		pc.ControlPlaneAuthPolicy = 0
	}
	if sc, ok := pc.GetClusterName().(*meshv1alpha1.ProxyConfig_ServiceCluster); ok && sc.ServiceCluster == d.GetServiceCluster() {
		pc.ClusterName = nil
	}
	if proto.Equal(pc.DrainDuration, d.DrainDuration) {
		pc.DrainDuration = nil
	}
	if proto.Equal(pc.TerminationDrainDuration, d.TerminationDrainDuration) {
		pc.TerminationDrainDuration = nil
	}
	if pc.DiscoveryAddress == d.DiscoveryAddress {
		pc.DiscoveryAddress = ""
	}
	if proto.Equal(pc.EnvoyMetricsService, d.EnvoyMetricsService) {
		pc.EnvoyMetricsService = nil
	}
	if proto.Equal(pc.EnvoyAccessLogService, d.EnvoyAccessLogService) {
		pc.EnvoyAccessLogService = nil
	}
	if proto.Equal(pc.Tracing, d.Tracing) {
		pc.Tracing = nil
	}
	if pc.ProxyAdminPort == d.ProxyAdminPort {
		pc.ProxyAdminPort = 0
	}
	if pc.StatNameLength == d.StatNameLength {
		pc.StatNameLength = 0
	}
	if pc.StatusPort == d.StatusPort {
		pc.StatusPort = 0
	}
	if proto.Equal(pc.Concurrency, d.Concurrency) {
		pc.Concurrency = nil
	}
	if len(pc.ProxyMetadata) == 0 {
		pc.ProxyMetadata = nil
	}
	return pc
}
