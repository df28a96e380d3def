package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/pkg/inject"
)

func testServer(nsLabels map[string]map[string]string) *httptest.Server {
	s := &Server{
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:      NewMetrics(nil),
		InjectConfig: inject.DefaultConfig,
		NamespaceLabels: func(_ context.Context, ns string) (map[string]string, error) {
			l, ok := nsLabels[ns]
			if !ok {
				return nil, fmt.Errorf("namespaces %q not found", ns)
			}
			return l, nil
		},
	}
	return httptest.NewServer(s.Handler())
}

func review(t *testing.T, url string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	req.UID = types.UID("uid-1")
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %s: %s", resp.Status, b)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.UID != "uid-1" || out.Kind != "AdmissionReview" {
		t.Fatalf("bad review back: %+v", out)
	}
	return out.Response
}

func podRequest(t *testing.T, pod *corev1.Pod, ns string) *admissionv1.AdmissionRequest {
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: podResource,
		Namespace: ns, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
	}
}

func TestInjectPatchMatchesInject(t *testing.T) {
	srv := testServer(map[string]map[string]string{"on": {"istio-injection": "enabled"}, "off": {}})
	defer srv.Close()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"a/b~c": "keep"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web", Image: "web:1"}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}},
	}
	resp := review(t, srv.URL+InjectPath, podRequest(t, pod, "on"))
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("want an allowed JSON patch, got %+v", resp)
	}
	var ops []Op
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "add" {
			t.Errorf("injection should only add: %+v", op)
		}
		if op.Path == "/spec/containers" || op.Path == "/spec/volumes" {
			t.Errorf("the pod's own containers/volumes rewritten: %s", op.Path)
		}
	}
	orig, _ := json.Marshal(pod)
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := p.Apply(orig)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, resp.Patch)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	want := pod.DeepCopy()
	if err := inject.Inject(want, inject.DefaultConfig(), inject.Params{Namespace: "on"}); err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(&got, want) {
		g, _ := yaml.Marshal(&got)
		w, _ := yaml.Marshal(want)
		t.Errorf("patched pod differs from inject.Inject's:\n%s\nwant:\n%s", g, w)
	}

	for name, tc := range map[string]struct {
		pod *corev1.Pod
		ns  string
	}{
		"unlabelled namespace": {pod, "off"},
		"opted out":            {&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{"sidecar.istio.io/inject": "false"}}, Spec: pod.Spec}, "on"},
		"already injected":     {want, "on"},
	} {
		resp := review(t, srv.URL+InjectPath, podRequest(t, tc.pod, tc.ns))
		if !resp.Allowed || resp.Patch != nil {
			t.Errorf("%s: want allowed without patch, got %+v", name, resp)
		}
	}
	bad := pod.DeepCopy()
	bad.Annotations["sidecar.istio.io/proxyMemory"] = "lots"
	resp = review(t, srv.URL+InjectPath, podRequest(t, bad, "on"))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "Pod on/web-* metadata.annotations[sidecar.istio.io/proxyMemory]") {
		t.Errorf("bad annotation: %+v", resp.Result)
	}
	resp = review(t, srv.URL+InjectPath, podRequest(t, pod, "missing"))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "reading namespace missing") {
		t.Errorf("unknown namespace: %+v", resp.Result)
	}
	upd := podRequest(t, pod, "on")
	upd.Operation = admissionv1.Update
	if resp := review(t, srv.URL+InjectPath, upd); !resp.Allowed || resp.Patch != nil {
		t.Errorf("update: %+v", resp)
	}
}

func vsRequest(t *testing.T, y, ns string, op admissionv1.Operation) *admissionv1.AdmissionRequest {
	raw, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
		Namespace: ns, Operation: op, Object: runtime.RawExtension{Raw: raw}}
}

func TestValidate(t *testing.T) {
	srv := testServer(nil)
	defer srv.Close()
	url := srv.URL + ValidatePath
	const head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n"
	tests := []struct {
		name, spec string
		allowed    bool
		want       []string
	}{
		{"valid", "  http: [{route: [{destination: {host: reviews}}]}]\n", true, nil},
		{"bad regex", "  http: [{match: [{uri: {regex: 'a('}}], route: [{destination: {host: reviews}}]}]\n", false,
			[]string{"VirtualService shop/r", "spec.http[0].match[0].uri.regex", "InvalidRegex"}},
		{"weights 90", "  http: [{route: [{destination: {host: reviews, subset: v1}, weight: 50}, {destination: {host: reviews, subset: v2}, weight: 40}]}]\n", false,
			[]string{"VirtualService shop/r", "spec.http[0].route", "90"}},
		{"unknown field", "  http: [{rout: [{destination: {host: reviews}}]}]\n", false,
			[]string{"VirtualService shop/r spec.http[0]", "rout"}},
		// Valid RE2, but a program Envoy refuses: the webhook says so at apply time.
		{"regex over Envoy's program size", "  http: [{match: [{uri: {regex: '/static/[a-zA-Z0-9._-]{0,200}/x'}}], route: [{destination: {host: reviews}}]}]\n", false,
			[]string{"spec.http[0].match[0].uri.regex", "RE2 program of 1014 instructions", "RegexTooLarge"}},
		{"regex at Envoy's program size", "  http: [{match: [{uri: {regex: '[a-z]{96}'}}], route: [{destination: {host: reviews}}]}]\n", true, nil},
		{"header value over 16 KiB", "  http: [{headers: {request: {set: {x-big: '" + strings.Repeat("a", 16385) + "'}}}, route: [{destination: {host: reviews}}]}]\n", false,
			[]string{"spec.http[0].headers.request.set[x-big]", "16384 bytes", "InvalidHeaderValue"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := review(t, url, vsRequest(t, head+tc.spec, "shop", admissionv1.Create))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, tc.allowed, resp.Result)
			}
			for _, w := range tc.want {
				if !strings.Contains(resp.Result.Message, w) {
					t.Errorf("message %q does not contain %q", resp.Result.Message, w)
				}
			}
		})
	}
	if resp := review(t, url, vsRequest(t, head+"  http: [{match: [{uri: {regex: 'a('}}]}]\n", "shop", admissionv1.Delete)); !resp.Allowed {
		t.Errorf("delete refused: %+v", resp.Result)
	}
	ap := `{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"p"},` +
		`"spec":{"rules":[{"from":[{"source":{"serviceAccounts":["` + strings.Repeat("n", 60) + "/" + strings.Repeat("s", 120) + `"]}}]}]}}`
	apReq := &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"},
		Namespace: "shop", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(ap)}}
	if resp := review(t, url, apReq); resp.Allowed || !strings.Contains(resp.Result.Message, "AuthorizationPolicy shop/p spec.rules[0].from[0].source.serviceAccounts") ||
		!strings.Contains(resp.Result.Message, "RBAC regex") {
		t.Errorf("an AuthorizationPolicy whose RBAC regex Envoy refuses: %+v", resp.Result)
	}
	other := &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Group: "telemetry.istio.io", Version: "v1", Kind: "Telemetry"},
		Namespace: "shop", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"telemetry.istio.io/v1","kind":"Telemetry","metadata":{"name":"t"},"spec":{}}`)}}
	if resp := review(t, url, other); !resp.Allowed {
		t.Errorf("a kind mizzen does not read was refused: %+v", resp.Result)
	} else if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "mizzen does not implement Telemetry") {
		t.Errorf("a kind mizzen does not implement: warnings %q", resp.Warnings)
	}
	// What istiod's validation warns about, and fields mizzen does not apply,
	// are admitted with warnings kubectl prints.
	for _, c := range []struct{ kind, group, obj, want string }{
		{"AuthorizationPolicy", "security.istio.io", `{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"d"},` +
			`"spec":{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}}`, "DenyHTTPOnlyOnTCP"},
		{"Gateway", "networking.istio.io", `{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{"name":"g"},` +
			`"spec":{"servers":[{"port":{"number":80,"name":"http","protocol":"HTTP"},"hosts":["*"],"defaultEndpoint":"127.0.0.1:8080"}]}}`, "spec.servers[0].defaultEndpoint"},
	} {
		req := &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Group: c.group, Version: "v1", Kind: c.kind},
			Namespace: "shop", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(c.obj)}}
		resp := review(t, url, req)
		if !resp.Allowed || !strings.Contains(strings.Join(resp.Warnings, "\n"), c.want) {
			t.Errorf("%s: allowed %v, warnings %q, want one with %s", c.kind, resp.Allowed, resp.Warnings, c.want)
		}
	}
}

func TestServeRejectsNonReviews(t *testing.T) {
	srv := testServer(nil)
	defer srv.Close()
	for _, tc := range []struct {
		method, ct, body string
		want             int
	}{
		{"GET", "", "", 405},
		{"POST", "text/plain", "{}", 415},
		{"POST", "application/json", "{}", 400},
		{"POST", "application/json", "nope", 400},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+ValidatePath, strings.NewReader(tc.body))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s %q: %d, want %d", tc.method, tc.ct, tc.body, resp.StatusCode, tc.want)
		}
	}
}

func TestDiff(t *testing.T) {
	cases := []struct{ a, b string }{
		{`{"a":1}`, `{"a":1}`},
		{`{"a":1,"b":{"c":[1,2]}}`, `{"a":2,"b":{"c":[1,2,3,4]},"d/e":"x"}`},
		{`{"l":[1,2,3]}`, `{"l":[1,3]}`},
		{`{"l":[1,2]}`, `{"l":[2,1,3]}`},
		{`{"m":{"x~y":1,"z":2}}`, `{"m":{"x~y":3}}`},
		{`{"v":"s"}`, `{"v":{"o":true}}`},
		{`[1]`, `{"x":1}`},
	}
	for _, tc := range cases {
		var a, b any
		_ = json.Unmarshal([]byte(tc.a), &a)
		_ = json.Unmarshal([]byte(tc.b), &b)
		ops := Diff(a, b)
		if tc.a == tc.b && len(ops) != 0 {
			t.Errorf("%s: ops for equal documents: %v", tc.a, ops)
		}
		if len(ops) == 0 {
			continue
		}
		raw, _ := json.Marshal(ops)
		p, err := jsonpatch.DecodePatch(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Apply([]byte(tc.a))
		if err != nil {
			t.Errorf("%s -> %s: %v (%s)", tc.a, tc.b, err, raw)
			continue
		}
		var g any
		_ = json.Unmarshal(got, &g)
		if !reflect.DeepEqual(g, b) {
			t.Errorf("%s -> %s: got %s with %s", tc.a, tc.b, got, raw)
		}
	}
}

// With Go-templated injection templates (Istio's form), the webhook's patch
// gives inject.Inject's pod, and what a template could not do comes back as
// admission warnings (kubectl prints them).
func TestInjectIstioTemplateWarnings(t *testing.T) {
	cfg, err := inject.FromConfigMap(map[string]string{
		inject.ValuesKey: `{"sidecarInjectorWebhook": {"rewriteAppHTTPProbe": true}}`,
		inject.ConfigKey: "templates:\n  sidecar: |\n    metadata:\n      annotations:\n        parsed: {{ fromJSON (index .ObjectMeta.Annotations `x/json`) | toString | quote }}\n" +
			"    spec:\n      containers:\n      - name: istio-proxy\n        image: {{ .ProxyImage | quote }}\n"}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(nil),
		InjectConfig: func() *inject.Config { return cfg },
		NamespaceLabels: func(context.Context, string) (map[string]string, error) {
			return map[string]string{"istio-injection": "enabled"}, nil
		}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"x/json": "{bad"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1",
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/r", Port: intstr.FromInt32(80)}}}}}}}
	resp := review(t, srv.URL+InjectPath, podRequest(t, pod, "on"))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `template "sidecar": fromJSON: "{bad" is not JSON`) {
		t.Fatalf("response %+v", resp)
	}
	orig, _ := json.Marshal(pod)
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := p.Apply(orig)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations["parsed"] != "{}" || got.Spec.Containers[1].Name != "istio-proxy" ||
		got.Spec.Containers[0].ReadinessProbe.HTTPGet.Path != "/app-health/web/readyz" || got.Annotations["prometheus.io/port"] != "15020" {
		t.Errorf("patched pod %+v", got)
	}
}

func TestInjectPathEnvs(t *testing.T) {
	for path, want := range map[string]map[string]string{
		"/inject":                              nil,
		"/inject/":                             nil,
		"/inject/cluster/west/net/n1":          {"ISTIO_META_CLUSTER_ID": "west", "ISTIO_META_NETWORK": "n1"},
		"/inject/cluster/west/foo/a--slash--b": {"ISTIO_META_CLUSTER_ID": "west", "FOO": "a/b"},
		"/inject/:ENV:cluster=east:ENV:net=":   {"ISTIO_META_CLUSTER_ID": "east", "ISTIO_META_NETWORK": ""},
		"/inject/cluster/west/net":             {"ISTIO_META_CLUSTER_ID": "west"},
		"/inject/:ENV:cluster=east:ENV:broken": {"ISTIO_META_CLUSTER_ID": "east"},
	} {
		got, notes := InjectPathEnvs(path)
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q", path, k, got[k], v)
			}
		}
		if strings.HasSuffix(path, "/net") || strings.HasSuffix(path, "broken") {
			if len(notes) != 1 {
				t.Errorf("%s: notes %q", path, notes)
			}
		} else if len(notes) != 0 {
			t.Errorf("%s: notes %q", path, notes)
		}
	}
	// Through the webhook: the path's cluster and network reach the proxy
	// and the pod's network label.
	cfg, err := inject.FromConfigMap(map[string]string{inject.ConfigKey: "templates:\n  sidecar: |\n    spec:\n      containers:\n      - name: istio-proxy\n        image: proxy\n"}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(nil),
		InjectConfig: func() *inject.Config { return cfg },
		NamespaceLabels: func(context.Context, string) (map[string]string, error) {
			return map[string]string{"istio-injection": "enabled"}, nil
		}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
	resp := review(t, srv.URL+InjectPath+"/cluster/west/net/n1", podRequest(t, pod, "on"))
	if !resp.Allowed || !strings.Contains(string(resp.Patch), `{"name":"ISTIO_META_CLUSTER_ID","value":"west"}`) ||
		!strings.Contains(string(resp.Patch), `"topology.istio.io/network":"n1"`) {
		t.Errorf("patch %s", resp.Patch)
	}
}
