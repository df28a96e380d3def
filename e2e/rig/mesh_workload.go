package rig

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// AppSpec is the echo app a workload runs (e2e/echo/cmd/echo).
type AppSpec struct {
	Service   string        // reported service name (default: the workload's "app" label, else its name)
	Version   string        // reported version, also the x-echo-version header (default: the "version" label, else "v1")
	Ports     []int         // HTTP ports it listens on, on 0.0.0.0 in the pod
	FailFirst int           // answer 503 to the first N HTTP requests (per port)
	FailAfter int           // answer 503 to every HTTP request after the first N (per port)
	Delay     time.Duration // delay before every answer (HTTP) or greeting (TCP)
	// TLSPorts serve HTTPS with a self-signed certificate for TLSNames (default:
	// the pod's name); answers report the SNI the client sent.
	TLSPorts []int
	TLSNames []string
	// TCPPorts serve a TCP echo that greets every connection with a JSON line
	// naming service, version and pod (echo.TCPGreeting), then echoes.
	TCPPorts []int
	// GRPCPorts serve the gRPC health service, answers tagged with the version
	// and pod in header metadata.
	GRPCPorts []int
	// MuxPorts serve HTTP (HTTP/1.1 and h2c) and the TCP echo on one port
	// (echo.StartMux): what a sniffed Service port may carry.
	MuxPorts []int
}

// ports are all the ports the app listens on; none: no app (a client-only pod).
// defaults fills the reported service and version from the workload's
// "app" and "version" labels, else its name and "v1".
func (a *AppSpec) defaults(labels map[string]string, name string) {
	if a.Service == "" {
		a.Service = cmp.Or(labels["app"], name)
	}
	if a.Version == "" {
		a.Version = cmp.Or(labels["version"], "v1")
	}
}

func (a AppSpec) ports() []int {
	var out []int
	for _, ps := range [][]int{a.Ports, a.TLSPorts, a.TCPPorts, a.GRPCPorts, a.MuxPorts} {
		out = append(out, ps...)
	}
	return out
}

// WorkloadSpec describes a pod for AddWorkload.
type WorkloadSpec struct {
	Name           string // the Pod's name
	Namespace      string // default "default"
	Labels         map[string]string
	ServiceAccount string // default "default"; created if missing
	IP             string // the pod's address, in 198.18.0.0/16 (not .0.1)
	NodeName       string // optional spec.nodeName
	App            AppSpec
	// Sidecar adds istio-init-style capture and a real Envoy sidecar.
	Sidecar bool
}

// Workload is a running pod of the mesh rig.
type Workload struct {
	WorkloadSpec
	Pod *Pod // the network namespace
	// Envoy is the pod's sidecar (nil without one); its admin interface is on
	// <pod ip>:15000, reachable from the test.
	Envoy *Envoy
	// ProxyID is the sidecar's node ID, sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local.
	ProxyID string
	// CaptureRules is the pod's nat table after the capture was installed (iptables-save).
	CaptureRules string
	// TokenPath and RootCertPath are the sidecar's "volumes": its pod-bound
	// service-account token (audience istio-ca) and the mesh root.
	TokenPath, RootCertPath string

	mesh   *Mesh
	podUID types.UID
}

// CaptureRules returns the nat-table rules the rig installs in a sidecar's pod,
// mirroring Istio's istio-iptables in its default sidecar mode (REDIRECT, all
// outbound and inbound TCP captured, proxy uid and gid 1337): as in
// tools/istio-iptables' golden files, including the 127.0.0.6 source rule (the
// inbound clusters bind it, so Envoy's own connections to the app are let
// through) and the rule that sends the proxy's loopback traffic to another
// local address back into inbound. Inbound exclusions: Istio's 15008 (HBONE),
// 15090, 15021, 15020 (the injector's defaults), 22, and the rig's addition
// 15000 (Envoy admin is on the pod's address here, so the test can reach it).
func CaptureRules() string {
	uid, gid := strconv.Itoa(ProxyUID), strconv.Itoa(ProxyGID)
	lines := []string{
		"*nat",
		":ISTIO_INBOUND - [0:0]",
		":ISTIO_REDIRECT - [0:0]",
		":ISTIO_IN_REDIRECT - [0:0]",
		":ISTIO_OUTPUT - [0:0]",
		"-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
		"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
		"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
		"-A PREROUTING -p tcp -j ISTIO_INBOUND",
	}
	for _, p := range []int{22, 15090, 15021, 15020, SidecarAdminPort} {
		lines = append(lines, fmt.Sprintf("-A ISTIO_INBOUND -p tcp --dport %d -j RETURN", p))
	}
	lines = append(lines,
		"-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
		"-A OUTPUT -p tcp -j ISTIO_OUTPUT",
		"-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
		"-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner "+uid+" -j ISTIO_IN_REDIRECT",
		"-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner "+uid+" -j RETURN",
		"-A ISTIO_OUTPUT -m owner --uid-owner "+uid+" -j RETURN",
		"-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner "+gid+" -j ISTIO_IN_REDIRECT",
		"-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner "+gid+" -j RETURN",
		"-A ISTIO_OUTPUT -m owner --gid-owner "+gid+" -j RETURN",
		"-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
		"-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
		"COMMIT",
	)
	return strings.Join(lines, "\n") + "\n"
}

// SidecarNodeID is the node ID an Istio sidecar of that pod presents.
func SidecarNodeID(ip, pod, ns string) string {
	return "sidecar~" + ip + "~" + pod + "." + ns + "~" + ns + ".svc.cluster.local"
}

// AddWorkload starts a pod: its network namespace (eth0 at spec.IP, routes for
// ServiceCIDR and ServiceEntryVIPCIDR on eth0, nothing else), the echo app, and with Sidecar the capture
// rules and an Envoy running as uid/gid 1337 bootstrapped to mizzen. It writes
// the ServiceAccount, the Pod and its status (podIP, Ready) and updates the
// EndpointSlices of the Services whose selector matches. With a sidecar it
// returns once mizzen shows the sidecar SYNCED (CDS and LDS ACKed) and Envoy is
// LIVE. Everything is torn down when the test ends.
func (m *Mesh) AddWorkload(t testing.TB, spec WorkloadSpec) *Workload {
	t.Helper()
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if spec.ServiceAccount == "" {
		spec.ServiceAccount = "default"
	}
	if spec.Name == "" {
		t.Fatalf("rig: AddWorkload: a name is required")
	}
	spec.Labels = maps.Clone(spec.Labels)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.App.defaults(spec.Labels, spec.Name)
	m.mu.Lock()
	for _, w := range m.workloads {
		if w.IP == spec.IP || (w.Name == spec.Name && w.Namespace == spec.Namespace) {
			m.mu.Unlock()
			t.Fatalf("rig: AddWorkload %s/%s at %s: clashes with workload %s/%s at %s", spec.Namespace, spec.Name, spec.IP, w.Namespace, w.Name, w.IP)
		}
	}
	m.mu.Unlock()

	w := &Workload{WorkloadSpec: spec, mesh: m}
	w.Pod = m.Net.AddPod(t, spec.Name, spec.IP)
	for _, cidr := range []string{ServiceCIDR, ServiceEntryVIPCIDR} {
		if out, err := exec.Command("ip", "-n", w.Pod.NetNS, "route", "add", cidr, "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("rig: pod %s: route for %s: %v: %s", spec.Name, cidr, err, out)
		}
	}
	if len(spec.App.ports()) > 0 {
		w.startApp(t)
	}
	if spec.Sidecar {
		w.installCapture(t)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m.ensureNamespace(t, ctx, spec.Namespace)
	w.writePod(t, ctx)
	m.mu.Lock()
	m.workloads = append(m.workloads, w)
	m.mu.Unlock()
	m.syncEndpointSlices(t, ctx)

	if spec.Sidecar {
		w.startSidecar(t)
	}
	return w
}

// startApp runs the echo app in the pod on 0.0.0.0:<ports> and waits (≤ 10 s)
// until every port answers from the root namespace (before any capture exists).
func (w *Workload) startApp(t testing.TB) {
	t.Helper()
	args := []string{"-service", w.App.Service, "-version", w.App.Version, "-pod", w.Name}
	for _, kind := range []struct {
		flag  string
		ports []int
	}{{"-addr", w.App.Ports}, {"-tls-addr", w.App.TLSPorts}, {"-tcp-addr", w.App.TCPPorts}, {"-grpc-addr", w.App.GRPCPorts}, {"-mux-addr", w.App.MuxPorts}} {
		for _, p := range kind.ports {
			args = append(args, kind.flag, net.JoinHostPort("0.0.0.0", strconv.Itoa(p)))
		}
	}
	for _, n := range w.App.TLSNames {
		args = append(args, "-tls-name", n)
	}
	if w.App.FailAfter > 0 {
		args = append(args, "-fail-after", strconv.Itoa(w.App.FailAfter))
	}
	if w.App.FailFirst > 0 {
		args = append(args, "-fail-first", strconv.Itoa(w.App.FailFirst))
	}
	if w.App.Delay > 0 {
		args = append(args, "-delay", w.App.Delay.String())
	}
	proc := startProcess(t, "echo "+w.Name, w.Pod.Command(EchoBinary(t), args...), tempLog(t, "echo-"+w.Name), 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range w.App.ports() {
		addr := net.JoinHostPort(w.IP, strconv.Itoa(p))
		for {
			if proc.Exited() {
				t.Fatalf("rig: echo app in pod %s exited: %v\n%s", w.Name, proc.waitErr, TailFile(proc.logPath, 20))
			}
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rig: echo app in pod %s not answering on %s: %v", w.Name, addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func tempLog(t testing.TB, name string) string {
	return t.TempDir() + "/" + name + ".log"
}

// installCapture loads CaptureRules into the pod's nat table (iptables-restore
// --noflush, atomically) and records the result.
func (w *Workload) installCapture(t testing.TB) {
	t.Helper()
	cmd := w.Pod.Command("iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(CaptureRules())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rig: pod %s: installing capture rules: %v: %s\nrules:\n%s", w.Name, err, out, CaptureRules())
	}
	out, err := w.Pod.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("rig: pod %s: iptables-save: %v: %s", w.Name, err, out)
	}
	w.CaptureRules = string(out)
	if !strings.Contains(w.CaptureRules, "--to-ports 15001") || !strings.Contains(w.CaptureRules, "--to-ports 15006") {
		t.Fatalf("rig: pod %s: capture rules missing after iptables-restore:\n%s", w.Name, w.CaptureRules)
	}
}

// podLabels are the Pod's labels: the spec's, plus what Istio's injector adds
// to a pod with a sidecar.
func (w *Workload) podLabels() map[string]string {
	l := maps.Clone(w.Labels)
	if w.Sidecar {
		l["security.istio.io/tlsMode"] = "istio"
	}
	return l
}

// writePod creates the ServiceAccount (if missing) and the Pod, then sets its
// status as kubelet would: Running, podIP, Ready.
func (w *Workload) writePod(t testing.TB, ctx context.Context) {
	t.Helper()
	core := w.mesh.API.Clientset().CoreV1()
	_, err := core.ServiceAccounts(w.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: w.ServiceAccount, Namespace: w.Namespace}}, metav1.CreateOptions{FieldManager: rigManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("rig: creating ServiceAccount %s/%s: %v", w.Namespace, w.ServiceAccount, err)
	}
	app := corev1.Container{Name: "app", Image: "mizzen-e2e/echo:latest"}
	for _, p := range w.App.ports() {
		app.Ports = append(app.Ports, corev1.ContainerPort{ContainerPort: int32(p), Protocol: corev1.ProtocolTCP})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.podLabels()},
		Spec: corev1.PodSpec{
			ServiceAccountName: w.ServiceAccount,
			NodeName:           w.NodeName,
			Containers:         []corev1.Container{app},
		},
	}
	if w.Sidecar {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name: "istio-proxy", Image: "mizzen-e2e/envoy:latest",
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr(int64(ProxyUID)), RunAsGroup: ptr(int64(ProxyGID))},
		})
	}
	created, err := core.Pods(w.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: rigManager})
	if err != nil {
		t.Fatalf("rig: creating Pod %s/%s: %v", w.Namespace, w.Name, err)
	}
	w.podUID = created.UID
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		PodIP:     w.IP,
		PodIPs:    []corev1.PodIP{{IP: w.IP}},
		HostIP:    NetworkHostIP,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	if _, err := core.Pods(w.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: rigManager}); err != nil {
		t.Fatalf("rig: Pod %s/%s status: %v", w.Namespace, w.Name, err)
	}
}

// startSidecar runs Envoy in the pod as uid/gid 1337 and waits until mizzen shows
// it SYNCED (CDS, LDS) and its /ready says LIVE.
func (w *Workload) startSidecar(t testing.TB) {
	t.Helper()
	m := w.mesh
	w.ProxyID = SidecarNodeID(w.IP, w.Name, w.Namespace)
	labels := map[string]any{}
	for k, v := range w.podLabels() {
		labels[k] = v
	}
	cluster := w.Labels["app"]
	if cluster == "" {
		cluster = w.Name
	}
	secure := w.mountIdentity(t)
	admin := net.JoinHostPort(w.IP, strconv.Itoa(SidecarAdminPort))
	w.Envoy = StartEnvoy(t, EnvoyOptions{
		NodeID:  w.ProxyID,
		Cluster: cluster + "." + w.Namespace,
		Metadata: map[string]any{
			"NAMESPACE":       w.Namespace,
			"LABELS":          labels,
			"SERVICE_ACCOUNT": w.ServiceAccount,
			"INSTANCE_IPS":    w.IP,
			"CLUSTER_ID":      MeshClusterID,
			"NAME":            w.Name,
			// The admin is on the pod's address, not Istio's 127.0.0.1:15000:
			// mizzen's stats listener (15090) must forward there.
			AdminAddressKey: admin,
		},
		XDSAddr:   m.SecureXDSAddr,
		Secure:    secure,
		AdminAddr: admin,
		LogLevel:  m.opts.EnvoyLogLevel,
		ExtraArgs: m.opts.EnvoyExtraArgs,
		Pod:       w.Pod,
		UID:       ProxyUID,
		GID:       ProxyGID,
	})
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.SyncTimeout)
	defer cancel()
	if err := m.WaitSynced(ctx, w.ProxyID, "cds", "lds"); err != nil {
		t.Fatalf("rig: sidecar of %s/%s not SYNCED in mizzen: %v", w.Namespace, w.Name, err)
	}
	if err := Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		if w.Envoy.Exited() {
			return fmt.Errorf("envoy exited")
		}
		if !w.Envoy.Ready(ctx) {
			return fmt.Errorf("envoy /ready is not LIVE")
		}
		return nil
	}); err != nil {
		t.Fatalf("rig: sidecar of %s/%s: %v", w.Namespace, w.Name, err)
	}
}

// mountIdentity does what the kubelet does for an injected sidecar's volumes:
// a projected service-account token for audience istio-ca, bound to the pod,
// and the namespace's istio-ca-root-cert ConfigMap, as files the proxy user
// can read. The token is the sidecar's only credential on the secure port.
func (w *Workload) mountIdentity(t testing.TB) *SecureXDS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), w.mesh.opts.SyncTimeout)
	defer cancel()
	core := w.mesh.API.Clientset().CoreV1()
	exp := int64(3600)
	tr, err := core.ServiceAccounts(w.Namespace).CreateToken(ctx, w.ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{"istio-ca"},
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: w.Name, UID: w.podUID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rig: token for %s/%s (pod %s): %v", w.Namespace, w.ServiceAccount, w.Name, err)
	}
	var root string
	if err := Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		cm, err := core.ConfigMaps(w.Namespace).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		root = cm.Data["root-cert.pem"]
		return nil
	}); err != nil {
		t.Fatalf("rig: istio-ca-root-cert in %s (published by mizzen): %v", w.Namespace, err)
	}
	dir, err := os.MkdirTemp("", "mizzen-e2e-identity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w.TokenPath = filepath.Join(dir, "istio-token")
	w.RootCertPath = filepath.Join(dir, "root-cert.pem")
	for path, data := range map[string]string{w.TokenPath: tr.Status.Token, w.RootCertPath: root} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &SecureXDS{RootCertPath: w.RootCertPath, TokenPath: w.TokenPath}
}

// WaitSynced waits until mizzen shows the workload's sidecar SYNCED for the
// given types (default cds and lds).
func (w *Workload) WaitSynced(ctx context.Context, types ...string) error {
	if w.ProxyID == "" {
		return fmt.Errorf("workload %s has no sidecar", w.Name)
	}
	return w.mesh.WaitSynced(ctx, w.ProxyID, types...)
}
