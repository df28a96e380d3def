package rig

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The mesh rig: a real kube-apiserver, mizzen in Kubernetes mode, and pods on the
// rig's network (see netns.go), each with an echo app and, optionally, a real
// Envoy sidecar behind istio-init-style capture (see mesh_workload.go). The rig
// plays kubelet and the EndpointSlice controller: it writes the Pods (with their
// status) and one EndpointSlice per Service, so mizzen sees what it would see in a
// cluster. Apps call Services by ClusterIP from inside their pods (mesh_client.go);
// only the sidecar makes that work, as there is no kube-proxy.
const (
	// ServiceCIDR is the apiserver's --service-cluster-ip-range; pods route it to eth0.
	ServiceCIDR = "10.96.0.0/16"
	// ServiceEntryVIPCIDR is for the addresses (VIPs) of ServiceEntries in tests:
	// 240.240.0.0/16, inside the reserved 240.0.0.0/4 that no network routes. Pods
	// route it to eth0 too (as a default route would), so an app can dial a
	// ServiceEntry's VIP, there being no DNS, and its sidecar captures the
	// connection; without a sidecar the address leads nowhere.
	ServiceEntryVIPCIDR = "240.240.0.0/16"
	// ProxyUID and ProxyGID are Istio's istio-proxy user and group: the sidecar
	// Envoy runs as them and the capture rules let their traffic through.
	ProxyUID = 1337
	ProxyGID = 1337
	// SidecarAdminPort is the sidecar Envoy's admin port, on the pod's own address
	// (excluded from inbound capture) so the test reaches it from the root namespace.
	SidecarAdminPort = 15000
	// MeshClusterID is the CLUSTER_ID the sidecars report.
	MeshClusterID = "Kubernetes"
	// rigManager is the EndpointSlice managed-by label value and field manager.
	rigManager = "mizzen-e2e-rig"
)

// MeshOptions tune StartMesh; the zero value is the standard setup.
type MeshOptions struct {
	// API reuses a running apiserver; default: a new one (StartAPIServer).
	API *APIServer
	// MizzenArgs are extra `mizzen serve` flags.
	MizzenArgs []string
	// EnvoyLogLevel is the sidecars' -l (default "info").
	EnvoyLogLevel string
	// EnvoyExtraArgs are appended to every sidecar's command line (e.g.
	// --file-flush-interval-msec, so access log lines show up at once).
	EnvoyExtraArgs []string
	// SyncTimeout bounds AddWorkload's wait for its sidecar to be SYNCED and
	// LIVE (default 30 s).
	SyncTimeout time.Duration
}

// Mesh is a running mesh rig.
type Mesh struct {
	API     *APIServer
	Mizzen  *Mizzen
	Net     *Network
	XDSAddr string // mizzen's ADS address on the rig network (198.18.0.1:<port>)
	// SecureXDSAddr is mizzen's secure port on the rig network: sidecars use
	// it, proving their identity with their pod's service-account token.
	SecureXDSAddr string

	opts         MeshOptions
	clientBinary string
	mu           sync.Mutex
	workloads    []*Workload
	services     []*Service
	namespaces   map[string]bool
	slices       map[string]*discoveryv1.EndpointSlice // ns/name of the Service → last written
}

// StartMesh starts the network (waiting for the machine-wide network lock), the
// apiserver and mizzen in Kubernetes mode with xDS on the rig network's host
// address, monitoring on loopback. Missing tools (ip, iptables, setpriv, Envoy)
// fail the test with a clear message. Everything stops when the test ends.
func StartMesh(t testing.TB, opts MeshOptions) *Mesh {
	t.Helper()
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "iptables-save", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("rig: mesh: `%s` is required (sidecar capture like istio-init; `make netns-tools` installs iproute2 and iptables, setpriv is util-linux): %v", tool, err)
		}
	}
	if _, err := EnvoyPath(); err != nil {
		t.Fatalf("rig: %v", err)
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.EnvoyLogLevel == "" {
		opts.EnvoyLogLevel = "info"
	}
	m := &Mesh{opts: opts, namespaces: map[string]bool{}, slices: map[string]*discoveryv1.EndpointSlice{}}
	EchoBinary(t)
	m.clientBinary = EchoClientBinary(t)
	m.Net = StartNetwork(t)
	m.API = opts.API
	if m.API == nil {
		m.API = StartAPIServer(t)
	}
	m.XDSAddr = FreeAddr(t, m.Net.HostIP)
	m.SecureXDSAddr = FreeAddr(t, m.Net.HostIP)
	args := append([]string{"--kubeconfig", m.API.Kubeconfig, "--xds-addr", m.XDSAddr,
		"--secure-xds-addr", m.SecureXDSAddr, "--serving-names", "istiod.istio-system.svc," + m.Net.HostIP}, opts.MizzenArgs...)
	m.Mizzen = StartMizzen(t, args...)
	return m
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name        string // e.g. "http" (protocol selection by name, as in Istio)
	Port        int32
	TargetPort  int32  // default Port
	AppProtocol string // optional, e.g. "http", "grpc"
}

// ServiceSpec describes a Service for AddService.
type ServiceSpec struct {
	Name      string
	Namespace string // default "default"
	Ports     []ServicePort
	Selector  map[string]string
	// Headless makes clusterIP None (a StatefulSet's governing Service):
	// clients dial the pods' own addresses; the Service's ClusterIP is "None".
	Headless bool
}

// Service is a Service the rig created, with its allocated ClusterIP.
type Service struct {
	ServiceSpec
	ClusterIP string
	Hostname  string // <name>.<ns>.svc.cluster.local
}

// URL is http://<ClusterIP>:<port><path> for the Service's first port (or the
// given port if one is passed).
func (s *Service) URL(path string, port ...int32) string {
	p := s.Ports[0].Port
	if len(port) > 0 {
		p = port[0]
	}
	return "http://" + net.JoinHostPort(s.ClusterIP, strconv.Itoa(int(p))) + path
}

// AddService creates the Service (the apiserver allocates its ClusterIP in
// ServiceCIDR) and its EndpointSlice from the workloads the selector matches;
// the rig keeps that slice in sync as workloads are added.
func (m *Mesh) AddService(t testing.TB, spec ServiceSpec) *Service {
	t.Helper()
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if spec.Name == "" || len(spec.Ports) == 0 {
		t.Fatalf("rig: AddService: a name and at least one port are required: %+v", spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m.ensureNamespace(t, ctx, spec.Namespace)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": rigManager}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: spec.Selector},
	}
	if spec.Headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.TargetPort == 0 {
			p.TargetPort = p.Port
		}
		sp := corev1.ServicePort{Name: p.Name, Port: p.Port, TargetPort: intstr.FromInt32(p.TargetPort), Protocol: corev1.ProtocolTCP}
		if p.AppProtocol != "" {
			sp.AppProtocol = &p.AppProtocol
		}
		svc.Spec.Ports = append(svc.Spec.Ports, sp)
	}
	created, err := m.API.Clientset().CoreV1().Services(spec.Namespace).Create(ctx, svc, metav1.CreateOptions{FieldManager: rigManager})
	if err != nil {
		t.Fatalf("rig: creating Service %s/%s: %v", spec.Namespace, spec.Name, err)
	}
	s := &Service{ServiceSpec: spec, ClusterIP: created.Spec.ClusterIP, Hostname: spec.Name + "." + spec.Namespace + ".svc.cluster.local"}
	_, cidr, _ := net.ParseCIDR(ServiceCIDR)
	if ip := net.ParseIP(s.ClusterIP); !spec.Headless && (ip == nil || !cidr.Contains(ip)) {
		t.Fatalf("rig: Service %s/%s got ClusterIP %q, not in %s", spec.Namespace, spec.Name, s.ClusterIP, ServiceCIDR)
	}
	m.mu.Lock()
	m.services = append(m.services, s)
	m.mu.Unlock()
	m.syncEndpointSlices(t, ctx)
	t.Logf("rig: Service %s/%s ClusterIP %s", spec.Namespace, spec.Name, s.ClusterIP)
	return s
}

// Services returns the Services the rig created.
func (m *Mesh) Services() []*Service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Service(nil), m.services...)
}

// Workloads returns the workloads added so far.
func (m *Mesh) Workloads() []*Workload {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Workload(nil), m.workloads...)
}

func (m *Mesh) ensureNamespace(t testing.TB, ctx context.Context, ns string) {
	t.Helper()
	m.mu.Lock()
	done := m.namespaces[ns]
	m.mu.Unlock()
	if done {
		return
	}
	_, err := m.API.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"istio-injection": "enabled"}}}, metav1.CreateOptions{FieldManager: rigManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("rig: creating Namespace %s: %v", ns, err)
	}
	m.mu.Lock()
	m.namespaces[ns] = true
	m.mu.Unlock()
}

// syncEndpointSlices writes, for every Service the rig created, one EndpointSlice
// (<service>-rig) listing the ready workloads its selector matches, as the
// EndpointSlice controller would: addresses, targetRef to the Pod, ready=true,
// ports named like the Service's with the target port. Unchanged slices are not
// written again.
func (m *Mesh) syncEndpointSlices(t testing.TB, ctx context.Context) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, svc := range m.services {
		want := m.endpointSlice(svc)
		key := svc.Namespace + "/" + svc.Name
		cli := m.API.Clientset().DiscoveryV1().EndpointSlices(svc.Namespace)
		prev := m.slices[key]
		if prev != nil && reflect.DeepEqual(prev.Endpoints, want.Endpoints) && reflect.DeepEqual(prev.Ports, want.Ports) {
			continue
		}
		var got *discoveryv1.EndpointSlice
		var err error
		if prev == nil {
			got, err = cli.Create(ctx, want, metav1.CreateOptions{FieldManager: rigManager})
		} else {
			want.ResourceVersion = prev.ResourceVersion
			got, err = cli.Update(ctx, want, metav1.UpdateOptions{FieldManager: rigManager})
		}
		if err != nil {
			t.Fatalf("rig: writing EndpointSlice %s/%s: %v", svc.Namespace, want.Name, err)
		}
		// Keep what we wrote (the apiserver may default fields) for the comparison.
		got.Endpoints, got.Ports = want.Endpoints, want.Ports
		m.slices[key] = got
	}
}

// endpointSlice builds svc's slice from the workloads (call with m.mu held).
func (m *Mesh) endpointSlice(svc *Service) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc.Name + "-rig",
			Namespace: svc.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc.Name,
				discoveryv1.LabelManagedBy:   rigManager,
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	for _, p := range svc.Ports {
		ep := discoveryv1.EndpointPort{Name: ptr(p.Name), Port: ptr(p.TargetPort), Protocol: ptr(corev1.ProtocolTCP)}
		if p.AppProtocol != "" {
			ep.AppProtocol = ptr(p.AppProtocol)
		}
		es.Ports = append(es.Ports, ep)
	}
	var ws []*Workload
	for _, w := range m.workloads {
		if w.Namespace == svc.Namespace && len(svc.Selector) > 0 && selectorMatches(svc.Selector, w.Labels) {
			ws = append(ws, w)
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Name < ws[j].Name })
	for _, w := range ws {
		e := discoveryv1.Endpoint{
			Addresses:  []string{w.IP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: w.Namespace, Name: w.Name, UID: w.podUID},
		}
		if w.NodeName != "" {
			e.NodeName = ptr(w.NodeName)
		}
		es.Endpoints = append(es.Endpoints, e)
	}
	return es
}

func selectorMatches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// SetMeshConfig writes the mesh config, as istiod reads it: the ConfigMap
// `istio` in istio-system (created with its namespace if missing), key `mesh`
// holding MeshConfig YAML, e.g. "outboundTrafficPolicy: {mode: REGISTRY_ONLY}".
// It replaces the whole mesh config; wait for the proxies to get the change.
func (m *Mesh) SetMeshConfig(t testing.TB, meshYAML string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ns, name = "istio-system", "istio"
	m.ensureNamespace(t, ctx, ns)
	cli := m.API.Clientset().CoreV1().ConfigMaps(ns)
	cm, err := cli.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cli.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data: map[string]string{"mesh": meshYAML}}, metav1.CreateOptions{FieldManager: rigManager})
	case err == nil:
		cm.Data = map[string]string{"mesh": meshYAML}
		_, err = cli.Update(ctx, cm, metav1.UpdateOptions{FieldManager: rigManager})
	}
	if err != nil {
		t.Fatalf("rig: writing the mesh config (ConfigMap %s/%s): %v", ns, name, err)
	}
	t.Logf("rig: mesh config: %s", meshYAML)
}

// WaitSynced waits (≤ ctx) until mizzen's /debug/syncz shows the proxy connected
// with every listed xDS type ("cds", "eds", "lds", "rds"; default cds and lds)
// SYNCED: the proxy ACKed the current version.
func (m *Mesh) WaitSynced(ctx context.Context, proxyID string, types ...string) error {
	if len(types) == 0 {
		types = []string{"cds", "lds"}
	}
	return Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		ps, err := m.Mizzen.ProxySync(ctx, proxyID)
		if err != nil {
			return err
		}
		for _, typ := range types {
			if st := ps.Types[typ]; st.State != "SYNCED" {
				return fmt.Errorf("proxy %s: %s is %s (sent %q, acked %q, current %q) %s", proxyID, typ, st.State, st.Sent, st.Acked, st.Current, st.NackMessage)
			}
		}
		return nil
	})
}

// WaitSyncedPast waits (≤ ctx) until the proxy has ACKed a version of typ other
// than before (e.g. the acked RDS version read just before a change) and that
// type is SYNCED: the change reached the proxy and was accepted.
func (m *Mesh) WaitSyncedPast(ctx context.Context, proxyID, typ, before string) error {
	return Eventually(ctx, 10*time.Millisecond, func(ctx context.Context) error {
		ps, err := m.Mizzen.ProxySync(ctx, proxyID)
		if err != nil {
			return err
		}
		st := ps.Types[typ]
		if st.Acked == before || st.State != "SYNCED" {
			return fmt.Errorf("proxy %s: %s is %s, acked %q (before %q) %s", proxyID, typ, st.State, st.Acked, before, st.NackMessage)
		}
		return nil
	})
}
