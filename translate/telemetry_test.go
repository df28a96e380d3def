package translate

import (
	"bytes"
	"testing"

	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

func fileLog(t *testing.T, mc *meshv1alpha1.MeshConfig) *fileaccesslogv3.FileAccessLog {
	t.Helper()
	logs := accessLogs(mc)
	if len(logs) != 1 {
		t.Fatalf("%d access logs, want 1", len(logs))
	}
	fl := &fileaccesslogv3.FileAccessLog{}
	if err := logs[0].GetTypedConfig().UnmarshalTo(fl); err != nil {
		t.Fatal(err)
	}
	return fl
}

func TestAccessLogFormats(t *testing.T) {
	if logs := accessLogs(&meshv1alpha1.MeshConfig{}); logs != nil {
		t.Errorf("no accessLogFile: %v, want none", logs)
	}
	fl := fileLog(t, &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout"})
	if got := fl.GetLogFormat().GetTextFormatSource().GetInlineString(); got != IstioTextAccessLogFormat || fl.GetPath() != "/dev/stdout" {
		t.Errorf("default text format %q path %q", got, fl.GetPath())
	}
	fl = fileLog(t, &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout", AccessLogFormat: "%RESPONSE_CODE% %REQ_WITHOUT_QUERY(:PATH)%"})
	if got := fl.GetLogFormat().GetTextFormatSource().GetInlineString(); got != "%RESPONSE_CODE% %REQ_WITHOUT_QUERY(:PATH)%\n" {
		t.Errorf("custom text format %q, want Istio's added newline", got)
	}
	if f := fl.GetLogFormat().GetFormatters(); len(f) != 1 || f[0].GetName() != "envoy.formatter.req_without_query" {
		t.Errorf("formatters %v", f)
	}
	for _, format := range []string{"", "not json"} {
		fl = fileLog(t, &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout", AccessLogEncoding: meshv1alpha1.MeshConfig_JSON, AccessLogFormat: format})
		fields := fl.GetLogFormat().GetJsonFormat().GetFields()
		if len(fields) != len(istioJSONAccessLogFormat) || fields["upstream_cluster"].GetStringValue() != "%UPSTREAM_CLUSTER_RAW%" {
			t.Errorf("JSON format for %q: %v, want Istio's default", format, fields)
		}
	}
}

// The JSON format is a map: its bytes must not change from one build to the
// next, or every rebuild would look like a change and be pushed.
func TestTelemetryBytesAreStable(t *testing.T) {
	mc := &meshv1alpha1.MeshConfig{AccessLogFile: "/dev/stdout", AccessLogEncoding: meshv1alpha1.MeshConfig_JSON}
	first := accessLogs(mc)[0].GetTypedConfig().GetValue()
	for i := 0; i < 20; i++ {
		if got := accessLogs(mc)[0].GetTypedConfig().GetValue(); !bytes.Equal(got, first) {
			t.Fatal("the access log's bytes differ between two builds of the same mesh config")
		}
	}
}

func TestWithMeshTelemetryOffLeavesListenersAlone(t *testing.T) {
	snap := &model.Snapshot{Mesh: &meshv1alpha1.MeshConfig{EnableTracing: true}} // no collector: no tracing
	ls := TelemetryListeners(&model.Proxy{Type: model.SidecarProxy})
	before := proto.Clone(ls[0])
	withMeshTelemetry(snap, ls)
	if !proto.Equal(before, ls[0]) {
		t.Error("withMeshTelemetry changed a listener with telemetry off")
	}
}

func TestTelemetryKey(t *testing.T) {
	a := &model.Proxy{Type: model.SidecarProxy}
	b := &model.Proxy{Type: model.SidecarProxy, AdminAddress: DefaultAdminAddress}
	c := &model.Proxy{Type: model.SidecarProxy, AdminAddress: "10.0.0.1:15000"}
	d := &model.Proxy{Type: model.SidecarProxy, IstioVersion: "1.31.1"}
	if TelemetryKey(a) != TelemetryKey(b) {
		t.Error("the default admin address and the same address given explicitly build different parts")
	}
	if TelemetryKey(a) == TelemetryKey(c) || TelemetryKey(a) == TelemetryKey(d) {
		t.Error("proxies with different stats config share a key")
	}
}
