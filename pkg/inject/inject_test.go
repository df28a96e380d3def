package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
}

func TestRequired(t *testing.T) {
	enabled := map[string]string{LabelNamespaceInjection: "enabled"}
	disabledNS := map[string]string{LabelNamespaceInjection: "disabled"}
	rev := map[string]string{LabelRevision: "default"}
	otherRev := map[string]string{LabelRevision: "canary"}
	never := DefaultConfig()
	never.NeverInjectSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"skip": "me"}}}
	always := DefaultConfig()
	always.Policy = PolicyDisabled
	always.AlwaysInjectSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"want": "it"}}}
	injected := pod(nil, map[string]string{AnnotationStatus: "{}"})
	hostNet := pod(nil, nil)
	hostNet.Spec.HostNetwork = true
	tests := []struct {
		name string
		cfg  *Config
		ns   map[string]string
		nsN  string
		pod  *corev1.Pod
		want bool
	}{
		{"enabled namespace", nil, enabled, "ns", pod(nil, nil), true},
		{"revision label", nil, rev, "ns", pod(nil, nil), true},
		{"another revision", nil, otherRev, "ns", pod(nil, nil), false},
		{"pod revision label in unlabelled namespace", nil, nil, "ns", pod(rev, nil), true},
		{"pod revision label, namespace of another revision", nil, otherRev, "ns", pod(rev, nil), false},
		{"pod of another revision", nil, nil, "ns", pod(otherRev, nil), false},
		{"unlabelled namespace", nil, nil, "ns", pod(nil, nil), false},
		{"pod label true in unlabelled namespace", nil, nil, "ns", pod(map[string]string{LabelInject: "true"}, nil), true},
		{"pod annotation true in unlabelled namespace", nil, nil, "ns", pod(nil, map[string]string{AnnotationInject: "yes"}), true},
		{"pod annotation false", nil, enabled, "ns", pod(nil, map[string]string{AnnotationInject: "false"}), false},
		{"pod label false", nil, enabled, "ns", pod(map[string]string{LabelInject: "false"}, nil), false},
		{"label wins over annotation", nil, enabled, "ns", pod(map[string]string{LabelInject: "false"}, map[string]string{AnnotationInject: "true"}), false},
		{"label true wins over annotation false", nil, nil, "ns", pod(map[string]string{LabelInject: "true"}, map[string]string{AnnotationInject: "false"}), true},
		{"disabled namespace beats the pod", nil, disabledNS, "ns", pod(map[string]string{LabelInject: "true"}, nil), false},
		{"kube-system", nil, enabled, "kube-system", pod(map[string]string{LabelInject: "true"}, nil), false},
		{"host network", nil, enabled, "ns", hostNet, false},
		{"already injected", nil, enabled, "ns", injected, false},
		{"neverInjectSelector", never, enabled, "ns", pod(map[string]string{"skip": "me"}, nil), false},
		{"neverInjectSelector yields to the pod", never, enabled, "ns", pod(map[string]string{"skip": "me", LabelInject: "true"}, nil), true},
		{"policy disabled", always, enabled, "ns", pod(nil, nil), false},
		{"alwaysInjectSelector under policy disabled", always, enabled, "ns", pod(map[string]string{"want": "it"}, nil), true},
		{"policy disabled, pod asks", always, enabled, "ns", pod(nil, map[string]string{AnnotationInject: "true"}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == nil {
				cfg = DefaultConfig()
			}
			d := Required(cfg, tc.ns, tc.pod, tc.nsN)
			if d.Inject != tc.want {
				t.Errorf("Inject = %v (%s), want %v", d.Inject, d.Reason, tc.want)
			}
			if d.Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

func TestInjectRefusesBadAnnotations(t *testing.T) {
	tests := []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{AnnotationProxyCPU: "lots"}, `metadata.annotations[sidecar.istio.io/proxyCPU]: "lots" is not a quantity`},
		{map[string]string{AnnotationProxyMemoryLimit: "-1Gi"}, `sidecar.istio.io/proxyMemoryLimit]: "-1Gi" is not a quantity`},
		{map[string]string{AnnotationProxyCPU: "3", AnnotationProxyCPULimit: "1"}, `sidecar.istio.io/proxyCPU]: request 3 is above the limit 1`},
		{map[string]string{AnnotationExcludeOutboundPorts: "80,http"}, `traffic.sidecar.istio.io/excludeOutboundPorts]: "http" is not a port`},
		{map[string]string{AnnotationExcludeInboundPorts: "70000"}, `traffic.sidecar.istio.io/excludeInboundPorts]: "70000" is not a port`},
		{map[string]string{AnnotationIncludeOutboundIPRanges: "10.0.0.0"}, `traffic.sidecar.istio.io/includeOutboundIPRanges]: "10.0.0.0" is not a CIDR`},
		{map[string]string{AnnotationIncludeOutboundIPRanges: "fd00::/8"}, `IPv6 ranges are not supported`},
		{map[string]string{AnnotationLogLevel: "loud"}, `sidecar.istio.io/logLevel]: "loud" is not one of`},
		{map[string]string{AnnotationTemplates: "sidecar,nope"}, `inject.istio.io/templates]: no template "nope"`},
	}
	for _, tc := range tests {
		p := pod(nil, tc.ann)
		before := p.DeepCopy()
		err := Inject(p, DefaultConfig(), Params{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "Pod ns/p ") {
			t.Errorf("%v: err = %v, want Pod ns/p ... %s", tc.ann, err, tc.want)
		}
		if len(p.Spec.Containers) != len(before.Spec.Containers) {
			t.Errorf("%v: pod changed although injection failed", tc.ann)
		}
	}
}

func TestInjectNamesGeneratedPodsAndWorkloads(t *testing.T) {
	ctrl := true
	p := pod(map[string]string{"pod-template-hash": "5d8f7c9b4"}, nil)
	p.Name, p.GenerateName, p.Namespace = "", "web-5d8f7c9b4-", ""
	p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f7c9b4", Controller: &ctrl}}
	if err := Inject(p, DefaultConfig(), Params{Namespace: "shop"}); err != nil {
		t.Fatal(err)
	}
	if got := p.Labels[LabelCanonicalName]; got != "web" {
		t.Errorf("canonical name %q, want the Deployment's name web", got)
	}
	boot := p.Spec.Containers[1].Args[1]
	if !strings.Contains(boot, `"WORKLOAD_NAME": "web"`) || !strings.Contains(boot, `"cluster": "web.$(POD_NAMESPACE)"`) {
		t.Errorf("bootstrap does not name workload web:\n%s", boot)
	}
	cron := pod(nil, nil)
	cron.OwnerReferences = []metav1.OwnerReference{{Kind: "Job", Name: "report-29130240", Controller: &ctrl}}
	if got := workloadName(cron); got != "report" {
		t.Errorf("CronJob workload %q", got)
	}
	err := Inject(pod(nil, map[string]string{AnnotationProxyCPU: "x"}), DefaultConfig(), Params{})
	if err == nil || !strings.HasPrefix(err.Error(), "Pod ns/p ") {
		t.Errorf("err %v", err)
	}
	clash := pod(nil, nil)
	clash.Spec.Volumes = []corev1.Volume{{Name: TokenVolumeName}}
	if err := Inject(clash, DefaultConfig(), Params{}); err == nil || !strings.Contains(err.Error(), "Pod ns/p spec.volumes: the pod already has a volume named istio-token") {
		t.Errorf("volume clash: %v", err)
	}
	gen := pod(nil, map[string]string{AnnotationProxyCPU: "x"})
	gen.Name, gen.GenerateName = "", "web-"
	if err := Inject(gen, DefaultConfig(), Params{}); err == nil || !strings.HasPrefix(err.Error(), "Pod ns/web-* ") {
		t.Errorf("err %v", err)
	}
}

func TestBootstrapEscapesDollars(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClusterID = "c$(HOME)"
	p := pod(nil, nil)
	if err := Inject(p, cfg, Params{}); err != nil {
		t.Fatal(err)
	}
	if boot := p.Spec.Containers[1].Args[1]; !strings.Contains(boot, `"CLUSTER_ID": "c$$(HOME)"`) {
		t.Errorf("literal $ not escaped for the kubelet:\n%s", boot)
	}
}

// rigRules are e2e/rig.CaptureRules() without the rig's 15000 exclusion:
// istio-iptables' default output.
const rigRules = `*nat
:ISTIO_INBOUND - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`

func TestCaptureRules(t *testing.T) {
	c := DefaultCapture()
	c.InboundPortsExclude = "15090,15021,15020"
	got, err := c.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if got != rigRules {
		t.Errorf("default rules differ from istio-iptables':\n%s", got)
	}
	c.OutboundIPRangesInclude = "10.96.0.0/12"
	c.OutboundIPRangesExclude = "10.96.0.10/32"
	c.OutboundPortsExclude = "5432"
	c.InboundPorts = "8080,9090"
	got, err = c.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN\n",
		"-A ISTIO_OUTPUT -d 10.96.0.10/32 -j RETURN\n-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT\nCOMMIT",
		"-A PREROUTING -p tcp -j ISTIO_INBOUND\n-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT\n-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT\n-A OUTPUT",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	c = DefaultCapture()
	c.InboundPorts, c.OutboundIPRangesInclude = "", ""
	got, _ = c.Rules()
	if strings.Contains(got, "PREROUTING") || strings.Contains(got, "-j ISTIO_REDIRECT") {
		t.Errorf("nothing should be captured:\n%s", got)
	}
	for _, bad := range []Capture{{ProxyPort: 0, InboundCapturePort: 15006, ProxyUID: "1", ProxyGID: "1"},
		{ProxyPort: 1, InboundCapturePort: 15006, ProxyUID: "x", ProxyGID: "1"}} {
		if _, err := bad.Rules(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestFromConfigMapErrors(t *testing.T) {
	tests := []struct {
		data map[string]string
		mesh string
		want string
	}{
		{map[string]string{ValuesKey: `{"global": {"imagePullPolicy": "Sometimes"}}`}, "", "values: global.imagePullPolicy"},
		{map[string]string{ValuesKey: `{"global": {"proxy": {"excludeOutboundPorts": "x"}}}`}, "", "values: global.proxy: traffic.sidecar.istio.io/excludeOutboundPorts"},
		{map[string]string{ConfigKey: "policy: maybe"}, "", "config: policy"},
		{map[string]string{ConfigKey: "polcy: enabled"}, "", `config: error unmarshaling JSON: while decoding JSON: json: unknown field "polcy"`},
		{map[string]string{ConfigKey: "template: '{{ .Values }}'"}, "", "config: template: Istio's single-template form is not supported"},
		{map[string]string{ConfigKey: "templates: {mizzen-envoy: 'spec: {}'}"}, "", "config: templates.mizzen-envoy: the name is mizzen's built-in sidecar"},
		{map[string]string{ConfigKey: "templates: {x: 'spec: {containerz: []}'}"}, "", "config: templates.x: not a Pod fragment"},
		{map[string]string{ConfigKey: "defaultTemplates: [sidecar, nope]"}, "", `config: defaultTemplates[1]: no template "nope"`},
		{map[string]string{ConfigKey: "neverInjectSelector: [{matchExpressions: [{key: a, operator: Bogus}]}]"}, "", "config: neverInjectSelector[0]"},
		{nil, "defaultConfig: {discoveryAddress: 7}", "mesh config"},
	}
	for _, tc := range tests {
		_, err := FromConfigMap(tc.data, tc.mesh)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %q: err = %v, want %q", tc.data, tc.mesh, err, tc.want)
		}
	}
	// A template mizzen cannot parse (here: a function it lacks) is
	// reported and refused when used; the others still work.
	cfg, err := FromConfigMap(map[string]string{ConfigKey: "templates: {x: '{{ nosuchfunc }}', plain: 'metadata: {labels: {a: b}}'}"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Notes) != 1 || !strings.Contains(cfg.Notes[0], `config.templates.x: not usable`) || !strings.Contains(cfg.Notes[0], "nosuchfunc") {
		t.Errorf("notes = %q", cfg.Notes)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: map[string]string{AnnotationTemplates: "x"}}}
	if err := Inject(pod, cfg, Params{}); err == nil || !strings.Contains(err.Error(), `Pod n/p spec: template "x" cannot be used`) {
		t.Errorf("err = %v", err)
	}
	pod.Annotations[AnnotationTemplates] = "plain"
	if err := Inject(pod, cfg, Params{}); err != nil || pod.Labels["a"] != "b" {
		t.Errorf("err = %v, labels %v", err, pod.Labels)
	}
	cfg, err = FromConfigMap(map[string]string{ValuesKey: `{"global": {"hub": "h", "tag": 1.2, "proxy": {"image": "proxyv2"}}}`}, "trustDomain: x\ndefaultConfig: {discoveryAddress: 'a:1', concurrency: 0}")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProxyImage != "h/proxyv2:1.2" || cfg.DiscoveryAddress != "a:1" || cfg.Concurrency != DefaultConcurrency {
		t.Errorf("got %+v", cfg)
	}
}
