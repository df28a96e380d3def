package model

import (
	"google.golang.org/protobuf/encoding/protojson"
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

// meshConfigFrom reads MeshConfig from the `istio` ConfigMap over Istio's defaults.
// A broken mesh config is reported and the defaults apply.
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
		if err == nil {
			err = protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, mc)
		}
		if err != nil {
			return defaultMeshConfig(), []ConfigError{{Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name,
				Field: "data.mesh", Code: "InvalidMeshConfig", Message: err.Error()}}
		}
		if mc.TrustDomain == "" {
			mc.TrustDomain = "cluster.local"
		}
		if mc.RootNamespace == "" {
			mc.RootNamespace = "istio-system"
		}
	}
	return mc, nil
}
