package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// The images deploy/injector-configmap.yaml names; the rig runs local
// binaries in their place.
const (
	proxyImage = "envoyproxy/envoy:v1.40.0"
	initImage  = "ghcr.io/mizzenmesh/mizzen:latest"
)

// TestSidecarInjection replaces istiod with mizzen as deploy/ does and checks
// what a user sees: deploy/ is accepted by the apiserver; mizzen, running as
// deploy/'s ServiceAccount with deploy/'s RBAC, patches its CA into the
// webhook configurations; pods get sidecars as Istio decides (namespace
// label, pod label/annotation); `mizzen inject` prints the same pod; kubectl
// apply of broken VirtualServices is refused naming the field; and an
// injected pod, run from its stored spec as the kubelet would, captures its
// traffic, gets config and identity from mizzen and reaches a mesh service.
func TestSidecarInjection(t *testing.T) {
	api := rig.StartAPIServer(t)
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}

	if !t.Run("kubectl apply --dry-run=server -k deploy/", func(t *testing.T) {
		objects := strings.Count("\n"+api.Kubectl(t, "", "kustomize", "deploy/").Stdout, "\nkind: ")
		res := api.Kubectl(t, "", "apply", "--dry-run=server", "-k", "deploy/")
		if res.Err != nil {
			t.Fatalf("deploy/ refused by the apiserver: %v\n%s", res.Err, res.Stderr)
		}
		if got := strings.Count(res.Stdout, "(server dry run)"); got != objects || objects < 12 {
			t.Fatalf("%d objects accepted in the dry run, deploy/ has %d:\n%s", got, objects, res.Stdout)
		}
	}) {
		t.FailNow()
	}

	// For real, then the webhooks re-pointed from Service istiod (no pods run
	// here) to the mizzen under test.
	if res := api.Kubectl(t, "", "apply", "-k", "deploy/"); res.Err != nil {
		t.Fatalf("kubectl apply -k deploy/: %v\n%s", res.Err, res.Stderr)
	}
	webhookAddr := rig.FreeAddr(t, "127.0.0.1")
	pointWebhooksAt(t, api, "https://"+webhookAddr)
	// mizzen runs with exactly what deploy/'s RBAC grants istiod.
	kubeconfig := api.ServiceAccountKubeconfig(t, "istio-system", "istiod")
	m := rig.StartMesh(t, rig.MeshOptions{API: api, MizzenArgs: []string{"--kubeconfig", kubeconfig, "--webhook-addr", webhookAddr}})
	meshYAML := "trustDomain: cluster.local\nrootNamespace: istio-system\ndefaultConfig:\n  discoveryAddress: " + m.SecureXDSAddr + "\n"
	m.SetMeshConfig(t, meshYAML)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("deploy/ holds istio-ingressgateway; examples/egress-gateway adds the egress gateway", func(t *testing.T) {
		for _, gw := range []struct{ name, istio, dir string }{
			{"istio-ingressgateway", "ingressgateway", ""},
			{"istio-egressgateway", "egressgateway", "examples/egress-gateway/"},
		} {
			if gw.dir != "" {
				// The overlay is deploy/ plus the gateway; apply the gateway's
				// objects only (deploy/'s webhooks point at the mizzen under test).
				out := api.Kubectl(t, "", "kustomize", gw.dir)
				if out.Err != nil {
					t.Fatalf("kubectl kustomize %s: %v\n%s", gw.dir, out.Err, out.Stderr)
				}
				var docs []string
				for _, d := range strings.Split(out.Stdout, "\n---\n") {
					if strings.Contains(d, "name: "+gw.name) {
						docs = append(docs, d)
					}
				}
				if len(docs) < 3 {
					t.Fatalf("%s: %d objects named %s*, want its Deployment, Service and ServiceAccount:\n%s", gw.dir, len(docs), gw.name, out.Stdout)
				}
				f := filepath.Join(t.TempDir(), "gateway.yaml")
				if err := os.WriteFile(f, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
					t.Fatal(err)
				}
				if res := api.Kubectl(t, "", "apply", "-f", f); res.Err != nil {
					t.Fatalf("kubectl apply -f (%s's gateway): %v\n%s", gw.dir, res.Err, res.Stderr)
				}
			}
			d, err := api.Clientset().AppsV1().Deployments("istio-system").Get(ctx, gw.name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tmpl := d.Spec.Template
			if tmpl.Labels["istio"] != gw.istio || tmpl.Labels["app"] != gw.name || tmpl.Annotations["inject.istio.io/templates"] != "gateway" ||
				tmpl.Labels["sidecar.istio.io/inject"] != "true" {
				t.Errorf("Deployment %s: pod labels %v, annotations %v; want istio=%s, app=%s, injected from the gateway template",
					gw.name, tmpl.Labels, tmpl.Annotations, gw.istio, gw.name)
			}
			svc, err := api.Clientset().CoreV1().Services("istio-system").Get(ctx, gw.name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ports := map[int32]int32{}
			for _, p := range svc.Spec.Ports {
				ports[p.Port] = p.TargetPort.IntVal
			}
			if ports[80] != 8080 || ports[443] != 8443 || svc.Spec.Selector["istio"] != gw.istio {
				t.Errorf("Service %s: ports %v, selector %v; want 80→8080, 443→8443, istio=%s", gw.name, ports, svc.Spec.Selector, gw.istio)
			}
		}
	})
	core := api.Clientset().CoreV1()
	for ns, labels := range map[string]map[string]string{"inject-on": {"istio-injection": "enabled"}, "inject-off": nil} {
		if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := core.ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("mizzen sets its root as caBundle of both webhook configurations", func(t *testing.T) {
		waitCABundles(t, ctx, api)
	})
	// The webhook answers once its caches are in; wait until a dry run shows
	// the mesh config's discovery address in the bootstrap.
	if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		p, err := core.Pods("inject-on").Create(ctx, appPod("probe", nil, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if c := container(p.Spec.Containers, "istio-proxy"); c == nil || !strings.Contains(strings.Join(c.Args, " "), m.SecureXDSAddr) {
			return fmt.Errorf("dry-run pod not injected with discovery address %s yet", m.SecureXDSAddr)
		}
		return nil
	}); err != nil {
		t.Fatalf("injection webhook not working: %v\n%s", err, rig.TailFile(m.Mizzen.LogPath, 30))
	}

	var injected *corev1.Pod
	t.Run("labelled namespace: istio-init and istio-proxy", func(t *testing.T) {
		injected = createPod(t, ctx, api, "inject-on", appPod("client", map[string]string{"app": "client", "version": "v1"}, nil))
		wantInjected(t, injected)
	})
	t.Run("unlabelled namespace: unchanged", func(t *testing.T) {
		wantUnchanged(t, createPod(t, ctx, api, "inject-off", appPod("client", map[string]string{"app": "client"}, nil)))
	})
	t.Run(`sidecar.istio.io/inject: "false" opts out`, func(t *testing.T) {
		wantUnchanged(t, createPod(t, ctx, api, "inject-on", appPod("by-annotation", nil, map[string]string{"sidecar.istio.io/inject": "false"})))
		wantUnchanged(t, createPod(t, ctx, api, "inject-on", appPod("by-label", map[string]string{"sidecar.istio.io/inject": "false"}, nil)))
	})
	t.Run(`sidecar.istio.io/inject: "true" opts in without the namespace label`, func(t *testing.T) {
		wantInjected(t, createPod(t, ctx, api, "inject-off", appPod("opted-in", map[string]string{"sidecar.istio.io/inject": "true"}, nil)))
	})
	t.Run("a bad annotation is refused naming it", func(t *testing.T) {
		_, err := core.Pods("inject-on").Create(ctx, appPod("bad", nil, map[string]string{"sidecar.istio.io/proxyCPU": "lots"}), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "Pod inject-on/bad metadata.annotations[sidecar.istio.io/proxyCPU]") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("mizzen inject -f gives the webhook's pod; injecting it again changes nothing", func(t *testing.T) {
		if injected == nil {
			t.Fatal("no injected pod")
		}
		dir := t.TempDir()
		in := filepath.Join(dir, "client.yaml")
		podYAML, err := yaml.Marshal(appPod("client", map[string]string{"app": "client", "version": "v1"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		meshFile := filepath.Join(dir, "mesh.yaml")
		for p, b := range map[string][]byte{in: append([]byte("apiVersion: v1\nkind: Pod\n"), podYAML...), meshFile: []byte(meshYAML)} {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(rig.MizzenBinary(t), "inject", "-f", in, "--injector-config", filepath.Join(root, "deploy", "injector-configmap.yaml"),
			"--meshconfig", meshFile)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mizzen inject: %v: %s", err, stderr.String())
		}
		var offline corev1.Pod
		if err := yaml.UnmarshalStrict(out, &offline); err != nil {
			t.Fatalf("mizzen inject output: %v\n%s", err, out)
		}
		// Stored (defaulted) by the apiserver in the unlabelled namespace, so
		// no webhook touches it: what `kubectl apply` of the output stores.
		offline.Name, offline.Namespace = "offline", "inject-off"
		stored, err := core.Pods("inject-off").Create(ctx, &offline, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		samePod(t, "mizzen inject -f", stored, injected)
		// The injected output through the webhook: left alone.
		offline.Name, offline.Namespace = "preinjected", "inject-on"
		again := createPod(t, ctx, api, "inject-on", &offline)
		samePod(t, "the webhook on an injected pod", again, injected)
	})

	t.Run("kubectl apply of an invalid VirtualService is refused naming the field", func(t *testing.T) {
		dir := t.TempDir()
		for _, tc := range []struct{ name, http, want string }{
			{"bad-regex", "[{match: [{uri: {regex: 'a(b'}}], route: [{destination: {host: reviews}}]}]", "spec.http[0].match[0].uri.regex"},
			{"weights-90", "[{route: [{destination: {host: reviews, subset: v1}, weight: 50}, {destination: {host: reviews, subset: v2}, weight: 40}]}]",
				"spec.http[0].route[*].weight: weights of 2 destinations sum to 90, not 100"},
		} {
			f := filepath.Join(dir, tc.name+".yaml")
			vs := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s, namespace: inject-on}\nspec:\n  hosts: [reviews]\n  http: %s\n", tc.name, tc.http)
			if err := os.WriteFile(f, []byte(vs), 0o644); err != nil {
				t.Fatal(err)
			}
			res := api.Kubectl(t, dir, "apply", "-f", f)
			if res.Err == nil {
				t.Errorf("%s: accepted", tc.name)
				continue
			}
			for _, want := range []string{`admission webhook "validation.istio.io" denied the request`, "VirtualService inject-on/" + tc.name, tc.want} {
				if !strings.Contains(res.Stderr, want) {
					t.Errorf("%s: kubectl's error lacks %q:\n%s", tc.name, want, res.Stderr)
				}
			}
		}
		good := filepath.Join(dir, "good.yaml")
		if err := os.WriteFile(good, []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: good, namespace: inject-on}\n"+
			"spec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if res := api.Kubectl(t, dir, "apply", "-f", good); res.Err != nil {
			t.Errorf("a valid VirtualService was refused: %s", res.Stderr)
		}
	})

	t.Run("the capture is the rig's (istio-iptables') rules", func(t *testing.T) {
		out, err := exec.Command(rig.MizzenBinary(t), "capture", "--dry-run", "-d", "15090,15021,15020,15000").Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != rig.CaptureRules() {
			t.Errorf("mizzen capture:\n%s\nrig.CaptureRules():\n%s", out, rig.CaptureRules())
		}
	})

	t.Run("the injected sidecar connects, gets config and identity, and carries traffic", func(t *testing.T) {
		if injected == nil {
			t.Fatal("no injected pod")
		}
		svc := m.AddService(t, rig.ServiceSpec{Name: "echo", Namespace: "inject-on", Selector: map[string]string{"app": "echo"},
			Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}})
		m.AddWorkload(t, rig.WorkloadSpec{Name: "echo-v1", Namespace: "inject-on", Labels: map[string]string{"app": "echo", "version": "v1"},
			IP: "198.18.7.1", App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
		envoy, err := rig.EnvoyPath()
		if err != nil {
			t.Fatal(err)
		}
		w := m.RunInjectedPod(t, rig.InjectedPodSpec{Pod: injected, IP: "198.18.7.2",
			Binaries: map[string]string{proxyImage: envoy, initImage: rig.MizzenBinary(t)}})
		if !strings.Contains(w.CaptureRules, "--to-ports 15001") || !strings.Contains(w.CaptureRules, "--to-ports 15006") {
			t.Fatalf("istio-init installed no capture:\n%s", w.CaptureRules)
		}
		if err := m.WaitSynced(ctx, w.ProxyID, "cds", "lds"); err != nil {
			t.Fatalf("injected sidecar not SYNCED: %v", err)
		}
		ps, err := m.Mizzen.ProxySync(ctx, w.ProxyID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ps.Types["sds"]; !ok {
			t.Fatalf("no sds row for %s: mizzen did not take the pod's token as its identity (%+v)", w.ProxyID, ps.Types)
		}
		_, _, clusters, err := w.HTTP(ctx, "GET", "http://127.0.0.1:15000/clusters", nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := "outbound|80||" + svc.Hostname; !strings.Contains(string(clusters), want) {
			t.Fatalf("Envoy's admin shows no %s:\n%.2000s", want, clusters)
		}
		_, _, dump, err := w.HTTP(ctx, "GET", "http://127.0.0.1:15000/config_dump", nil)
		if err != nil {
			t.Fatal(err)
		}
		// mizzen's config asks for the workload certificate (auto mTLS,
		// PERMISSIVE inbound): it must arrive and be ACKed.
		if !bytes.Contains(dump, []byte(`"ROOTCA"`)) {
			t.Fatalf("the sidecar's config references no SDS secret ROOTCA")
		}
		if err := m.WaitSynced(ctx, w.ProxyID, "sds"); err != nil {
			t.Fatalf("SDS: %v", err)
		}
		_, _, secrets, err := w.HTTP(ctx, "GET", "http://127.0.0.1:15000/config_dump?resource=dynamic_active_secrets", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{`"name": "default"`, `"name": "ROOTCA"`} {
			if !bytes.Contains(secrets, []byte(name)) {
				t.Errorf("Envoy has no active secret %s", name)
			}
		}
		if ps, err = m.Mizzen.ProxySync(ctx, w.ProxyID); err != nil {
			t.Fatal(err)
		}
		for typ, st := range ps.Types {
			if st.Nacks > 0 || st.State == "NACKED" {
				t.Errorf("the injected sidecar rejected %s: %s", typ, st.NackMessage)
			}
		}
		t.Logf("sds: %+v", ps.Types["sds"])
		// What the prometheus.io annotations point at, from outside the pod.
		stats := "http://" + w.IP + ":15090/stats/prometheus"
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, stats, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte("envoy_cluster_manager_active_clusters")) {
				return fmt.Errorf("GET %s: %s", stats, resp.Status)
			}
			return nil
		}); err != nil {
			t.Fatalf("Envoy's stats at the annotated port: %v", err)
		}
		status, echo, err := w.Echo(ctx, "GET", svc.URL("/"), nil)
		if err != nil || status != 200 || echo == nil || echo.Pod != "echo-v1" {
			t.Fatalf("GET %s through the injected sidecar: %d %+v %v", svc.URL("/"), status, echo, err)
		}
	})
}

// appPod is a Pod as a user writes it, with ServiceAccount app.
func appPod(name string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "example/app:1",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
}

func createPod(t *testing.T, ctx context.Context, api *rig.APIServer, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := api.Clientset().CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Pod %s/%s: %v", ns, p.Name, err)
	}
	return got
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func wantInjected(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if got := names(p.Spec.InitContainers); !slices.Equal(got, []string{"istio-init"}) {
		t.Errorf("Pod %s/%s init containers %v, want [istio-init]", p.Namespace, p.Name, got)
	}
	if got := names(p.Spec.Containers); !slices.Equal(got, []string{"app", "istio-proxy"}) {
		t.Errorf("Pod %s/%s containers %v, want [app istio-proxy]", p.Namespace, p.Name, got)
	}
	var vols []string
	for _, v := range p.Spec.Volumes {
		vols = append(vols, v.Name)
	}
	if !slices.Contains(vols, "istio-token") || !slices.Contains(vols, "istiod-ca-cert") {
		t.Errorf("Pod %s/%s volumes %v", p.Namespace, p.Name, vols)
	}
	if p.Annotations["sidecar.istio.io/status"] == "" || p.Labels["security.istio.io/tlsMode"] != "istio" {
		t.Errorf("Pod %s/%s lacks Istio's status annotation or tlsMode label: %v %v", p.Namespace, p.Name, p.Annotations, p.Labels)
	}
	if proxy := container(p.Spec.Containers, "istio-proxy"); proxy != nil {
		if sc := proxy.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 1337 {
			t.Errorf("istio-proxy not uid 1337: %+v", sc)
		}
		if proxy.ReadinessProbe == nil || proxy.ReadinessProbe.HTTPGet == nil || proxy.ReadinessProbe.HTTPGet.Port.IntValue() != 15021 {
			t.Errorf("istio-proxy readiness probe %+v", proxy.ReadinessProbe)
		}
	}
}

func wantUnchanged(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if len(p.Spec.InitContainers) != 0 || !slices.Equal(names(p.Spec.Containers), []string{"app"}) || p.Annotations["sidecar.istio.io/status"] != "" {
		t.Errorf("Pod %s/%s was changed: init %v containers %v annotations %v", p.Namespace, p.Name,
			names(p.Spec.InitContainers), names(p.Spec.Containers), p.Annotations)
	}
}

// samePod compares what injection decides: containers, init containers,
// volumes, labels and annotations.
func samePod(t *testing.T, what string, got, want *corev1.Pod) {
	t.Helper()
	for _, part := range []struct {
		name      string
		got, want any
	}{
		{"initContainers", got.Spec.InitContainers, want.Spec.InitContainers},
		{"containers", got.Spec.Containers, want.Spec.Containers},
		{"volumes", got.Spec.Volumes, want.Spec.Volumes},
		{"labels", got.Labels, want.Labels},
		{"annotations", got.Annotations, want.Annotations},
	} {
		if !apiequality.Semantic.DeepEqual(part.got, part.want) {
			g, _ := yaml.Marshal(part.got)
			w, _ := yaml.Marshal(part.want)
			t.Errorf("%s: %s differ from the webhook's:\n%s\nwebhook:\n%s", what, part.name, g, w)
		}
	}
}

// pointWebhooksAt makes every webhook of deploy/'s two configurations call
// base (the mizzen under test) instead of Service istiod, leaving caBundle
// to mizzen.
func pointWebhooksAt(t *testing.T, api *rig.APIServer, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := api.Clientset().AdmissionregistrationV1()
	mwc, err := adm.MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range mwc.Webhooks {
		url := base + *mwc.Webhooks[i].ClientConfig.Service.Path
		mwc.Webhooks[i].ClientConfig.Service, mwc.Webhooks[i].ClientConfig.URL = nil, &url
	}
	if _, err := adm.MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	vwc, err := adm.ValidatingWebhookConfigurations().Get(ctx, "istio-validator-istio-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range vwc.Webhooks {
		url := base + *vwc.Webhooks[i].ClientConfig.Service.Path
		vwc.Webhooks[i].ClientConfig.Service, vwc.Webhooks[i].ClientConfig.URL = nil, &url
		// Fail, not Ignore, here: a webhook that cannot be reached must fail
		// this test rather than let broken config through unnoticed.
		fail := admissionregistrationv1.Fail
		vwc.Webhooks[i].FailurePolicy = &fail
	}
	if _, err := adm.ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitCABundles waits until every webhook of both configurations carries the
// mesh root (istio-ca-root-cert) as its caBundle.
func waitCABundles(t *testing.T, ctx context.Context, api *rig.APIServer) {
	t.Helper()
	adm := api.Clientset().AdmissionregistrationV1()
	err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		cm, err := api.Clientset().CoreV1().ConfigMaps("istio-system").Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		root := []byte(cm.Data["root-cert.pem"])
		mwc, err := adm.MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector", metav1.GetOptions{})
		if err != nil {
			return err
		}
		vwc, err := adm.ValidatingWebhookConfigurations().Get(ctx, "istio-validator-istio-system", metav1.GetOptions{})
		if err != nil {
			return err
		}
		var bundles [][]byte
		for _, w := range mwc.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for _, w := range vwc.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for i, b := range bundles {
			if !bytes.Equal(b, root) {
				return fmt.Errorf("webhook %d of %d has no caBundle equal to the mesh root yet", i+1, len(bundles))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
