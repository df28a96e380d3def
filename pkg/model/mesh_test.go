package model

import (
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func meshCM(mesh string) []*corev1.ConfigMap {
	return []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{"mesh": mesh}}}
}

func TestMeshConfigDefaultsSurviveAPartialDocument(t *testing.T) {
	for _, doc := range []string{"", "accessLogFile: /dev/stdout", "trustDomain: example.org"} {
		mc, errs := meshConfigFrom(meshCM(doc))
		if len(errs) > 0 {
			t.Fatalf("%q: %v", doc, errs)
		}
		if mode := mc.GetOutboundTrafficPolicy().GetMode(); mode != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
			t.Errorf("%q: outboundTrafficPolicy = %v, want ALLOW_ANY (Istio's default)", doc, mode)
		}
		if mc.GetRootNamespace() != "istio-system" || mc.GetTrustDomain() == "" {
			t.Errorf("%q: rootNamespace %q trustDomain %q", doc, mc.GetRootNamespace(), mc.GetTrustDomain())
		}
		if !mc.GetEnableTracing() {
			t.Errorf("%q: enableTracing = false, want Istio's default true", doc)
		}
	}
	mc, _ := meshConfigFrom(meshCM("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\nenableTracing: false"))
	if mc.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY || mc.GetEnableTracing() {
		t.Errorf("explicit values lost: %v", mc)
	}
	if _, errs := meshConfigFrom(meshCM("accessLogFile: [")); len(errs) != 1 || errs[0].Code != "InvalidMeshConfig" {
		t.Errorf("broken YAML: %v", errs)
	}
}

func TestMeshTelemetryFields(t *testing.T) {
	mc, errs := meshConfigFrom(meshCM(`
accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat: '{"code": "%RESPONSE_CODE%", "up": {"host": "%UPSTREAM_HOST%"}}'
defaultConfig:
  tracing:
    sampling: 25
    zipkin: {address: "zipkin.observability:9411"}
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	f, err := AccessLogJSONFormat(mc)
	if err != nil || f.GetFields()["code"].GetStringValue() != "%RESPONSE_CODE%" ||
		f.GetFields()["up"].GetStructValue().GetFields()["host"].GetStringValue() != "%UPSTREAM_HOST%" {
		t.Errorf("json format = %v, %v", f, err)
	}
	host, port, ok := ZipkinCollector(mc)
	if !ok || host != "zipkin.observability" || port != 9411 {
		t.Errorf("collector = %q %d %v", host, port, ok)
	}
	if s := TracingSampling(mc); s != 25 {
		t.Errorf("sampling = %v", s)
	}

	mc, _ = meshConfigFrom(meshCM("enableTracing: false\ndefaultConfig: {tracing: {zipkin: {address: 'z:9411'}}}"))
	if _, _, ok := ZipkinCollector(mc); ok {
		t.Error("enableTracing: false still traces")
	}
	mc, _ = meshConfigFrom(meshCM("accessLogFile: /dev/stdout"))
	if _, _, ok := ZipkinCollector(mc); ok {
		t.Error("tracing without a collector address")
	}
	if s := TracingSampling(mc); s != DefaultTracingSampling {
		t.Errorf("default sampling = %v", s)
	}
}

func TestMeshTelemetryWarnings(t *testing.T) {
	for _, tc := range []struct{ doc, code string }{
		{"accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: 'not json'", "InvalidAccessLogFormat"},
		{"accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: '[1]'", "InvalidAccessLogFormat"},
		{"defaultConfig: {tracing: {zipkin: {address: 'zipkin'}}}", "InvalidTracingAddress"},
		{"defaultConfig: {tracing: {zipkin: {address: 'zipkin:0'}}}", "InvalidTracingAddress"},
		{"defaultConfig: {tracing: {sampling: 150, zipkin: {address: 'z:9411'}}}", "InvalidTracingSampling"},
		{"defaultConfig: {tracing: {datadog: {address: 'dd:8126'}}}", "UnsupportedTracer"},
	} {
		mc, errs := meshConfigFrom(meshCM(tc.doc))
		if len(errs) != 1 || errs[0].Code != tc.code || !errs[0].Warning || !strings.HasPrefix(errs[0].Field, "data.mesh ") {
			t.Errorf("%q: errors %v, want one %s warning", tc.doc, errs, tc.code)
		}
		if mc.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
			t.Errorf("%q: a warning dropped the rest of the mesh config", tc.doc)
		}
	}
	mc, _ := meshConfigFrom(meshCM("defaultConfig: {tracing: {sampling: 150, zipkin: {address: 'z:9411'}}}"))
	if s := TracingSampling(mc); s != DefaultTracingSampling {
		t.Errorf("out-of-range sampling = %v, want the default", s)
	}
	mc, _ = meshConfigFrom(meshCM("defaultConfig: {tracing: {zipkin: {address: 'zipkin'}}}"))
	if _, _, ok := ZipkinCollector(mc); ok {
		t.Error("unusable address still traces")
	}
}
