package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The template functions, from Istio's documented behaviour (the whole
// templates are checked against istioctl in e2e/inject_istio_test.go).
func TestTemplateFuncs(t *testing.T) {
	w := &warnings{}
	for _, tc := range []struct{ got, want string }{
		{excludeInboundPort(15020, "15090, 15021"), "15090,15021,15020"},
		{excludeInboundPort("15020", "15020,1"), "15020,1"},
		{excludeInboundPort(0, "1"), "1"},
		{w.appendMultusNetwork("", "default/istio-cni"), "default/istio-cni"},
		{w.appendMultusNetwork("a, default/istio-cni", "default/istio-cni"), "a, default/istio-cni"},
		{w.appendMultusNetwork("a", "default/istio-cni"), "a, default/istio-cni"},
		{w.appendMultusNetwork(`[{"name": "a"}]`, "default/istio-cni"), `[{"name": "a"}, {"name": "istio-cni", "namespace": "default"}]`},
		{indentAfterFirst(2, "a\nb"), "a\n  b"},
		{w.structToJSON(strdict("a", "1", "b")), `{"a":"1","b":""}`},
		{w.toJSON(nil), "{}"},
		{w.structToJSON(mergeMaps(map[string]string{"a": "1", "b": "1"}, map[string]string{"b": "2"})), `{"a":"1","b":"2"}`},
		{w.structToJSON(omitKeys(map[string]string{"a": "1", "b": "2"}, "a")), `{"b":"2"}`},
		{containerPorts([]corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 1}, {ContainerPort: 2, Protocol: "UDP"}}},
			{Name: ProxyContainerName, Ports: []corev1.ContainerPort{{ContainerPort: 15090}}}}, false), "1"},
		{w.structToJSON(omitNil(map[string]any{"a": nil, "b": []any{nil, 1.0}})), `{"b":[1]}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if got := w.fromJSON("{nope"); got != "{}" || len(w.list) != 1 {
		t.Errorf("fromJSON of bad JSON: %v, warnings %q", got, w.list)
	}
}

func TestAppProbers(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name:           "app",
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/r", Port: intstr.FromString("http"), Scheme: "HTTPS"}}, TimeoutSeconds: 2},
		LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}},
		StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}}},
	}, {Name: ProxyContainerName}}}}
	got, err := appProbers(pod, 15020)
	if err != nil {
		t.Fatal(err)
	}
	// A named port is resolved; one the container lacks is left out.
	want := `{"/app-health/app/readyz":{"httpGet":{"path":"/r","port":8080,"scheme":"HTTPS"},"timeoutSeconds":2},"/app-health/app/startupz":{"grpc":{"port":9090,"service":null}}}`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	rewriteProbes(pod, 15020)
	c := pod.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != 15020 || p.HTTPGet.Scheme == "HTTPS" || p.TCPSocket != nil || p.GRPC != nil {
			t.Errorf("not rewritten to the agent: %+v", p)
		}
	}
	if c.StartupProbe.HTTPGet.Path != "/app-health/app/startupz" {
		t.Errorf("startup probe path %q", c.StartupProbe.HTTPGet.Path)
	}
}

// mizzen's own sidecar says which of Istio's injection annotations it does
// not apply, rather than dropping them.
func TestBuiltinNotes(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: map[string]string{
		AnnotationProxyConfig: "concurrency: 1", AnnotationProxyCPU: "100m", "example.com/x": "y"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "a"}}}}
	notes, err := InjectNotes(pod, DefaultConfig(), Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "metadata.annotations[proxy.istio.io/config]: not applied by template mizzen-envoy") {
		t.Errorf("notes = %q", notes)
	}
}

// Istio's injection refuses annotation values it would render into a pod
// that cannot start, naming the annotation.
func TestIstioAnnotationErrors(t *testing.T) {
	cfg, err := FromConfigMap(map[string]string{ConfigKey: "templates: {sidecar: 'metadata: {labels: {a: b}}'}"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for ann, want := range map[string]string{
		AnnotationInterceptionMode:     `metadata.annotations[sidecar.istio.io/interceptionMode]: "SOMETIMES" is not REDIRECT, TPROXY or NONE`,
		AnnotationExcludeOutboundPorts: `metadata.annotations[traffic.sidecar.istio.io/excludeOutboundPorts]`,
		AnnotationProxyConfig:          `metadata.annotations[proxy.istio.io/config]`,
	} {
		val := map[string]string{AnnotationInterceptionMode: "SOMETIMES", AnnotationExcludeOutboundPorts: "x", AnnotationProxyConfig: "concurrency: lots"}[ann]
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: map[string]string{ann: val}}}
		if err := Inject(pod, cfg, Params{}); err == nil || !strings.Contains(err.Error(), "Pod n/p "+want) {
			t.Errorf("%s: err = %v, want %q", ann, err, want)
		}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n"}}
	if err := Inject(pod, cfg, Params{}); err != nil || pod.Labels["a"] != "b" || pod.Annotations[AnnotationStatus] == "" {
		t.Errorf("err %v, pod %+v", err, pod.ObjectMeta)
	}
}

// A mesh config field this API version does not know is skipped, as istiod
// skips it, and said.
func TestMeshConfigUnknownField(t *testing.T) {
	cfg, err := FromConfigMap(nil, "trustDomain: example.org\nnoSuchField: 1\ndefaultConfig: {statusPort: 15099}\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mesh.GetTrustDomain() != "example.org" || cfg.Mesh.GetDefaultConfig().GetStatusPort() != 15099 ||
		cfg.Mesh.GetDefaultConfig().GetProxyAdminPort() != 15000 {
		t.Errorf("mesh %v", cfg.Mesh)
	}
	if len(cfg.Notes) != 1 || !strings.Contains(cfg.Notes[0], "noSuchField") {
		t.Errorf("notes %q", cfg.Notes)
	}
}
