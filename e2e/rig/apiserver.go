package rig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// APIServer is a real kube-apiserver with an embedded etcd (the e2e/apiserver
// module, see APIServerBinary) running on 127.0.0.1, with Istio's CRDs installed.
// Authentication is a static token for user "mizzen-e2e-admin" in group
// system:masters; authorization is RBAC, so other identities are checked for real.
// No controller-manager or scheduler runs: nothing creates ServiceAccounts,
// tokens for them, EndpointSlices for Services, or finishes deleting Namespaces —
// tests write what they need (the ServiceAccount admission plugin is off, so Pods
// are accepted without a "default" ServiceAccount; set spec.serviceAccountName).
type APIServer struct {
	URL        string       // https://127.0.0.1:<port>
	Kubeconfig string       // path of a kubeconfig for URL with Token and the CA
	Token      string       // bearer token of the system:masters admin
	RestConfig *rest.Config // admin config (QPS 500, burst 1000)
	DataDir    string       // etcd data dir, kept across Restart
	CAFile     string       // PEM of the self-signed serving certificate
	SAKeyFile  string       // the service-account token signing key (EC P-256, SEC 1 PEM): tests forge tokens with it
	LogPath    string       // log of the current process (stdout+stderr of kube-apiserver and etcd)

	owner    testing.TB
	bin      string
	dir      string
	args     []string
	starts   int
	proc     *process
	mu       sync.Mutex
	clients  *kubernetes.Clientset
	dyn      *dynamic.DynamicClient
	istio    *istioclient.Clientset
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	httpc    *http.Client
	stopOnce bool
}

// APIServerOptions tune StartAPIServerWithOptions.
type APIServerOptions struct {
	// ExtraArgs are appended to the kube-apiserver flags (later flags win).
	ExtraArgs []string
	// NoIstioCRDs skips installing Istio's CRDs.
	NoIstioCRDs bool
}

const (
	apiserverStartLimit = 60 * time.Second
	apiserverAdminUser  = "mizzen-e2e-admin"
	// APIServerFieldManager is the field manager Apply uses.
	APIServerFieldManager = "mizzen-e2e"
)

// StartAPIServer starts kube-apiserver + etcd on loopback, waits (≤ 60 s) for
// /readyz, installs Istio's CRDs from the istio.io/api module and waits until
// they are Established. Everything is torn down when the test ends, also on failure.
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	return StartAPIServerWithOptions(t, APIServerOptions{})
}

// StartAPIServerWithOptions is StartAPIServer with options.
func StartAPIServerWithOptions(t testing.TB, opts APIServerOptions) *APIServer {
	t.Helper()
	bin := APIServerBinary(t)
	dir := t.TempDir() // removed after the process is stopped (cleanups run LIFO)
	a := &APIServer{owner: t, bin: bin, dir: dir, DataDir: filepath.Join(dir, "etcd")}
	if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
		t.Fatalf("rig: apiserver: %v", err)
	}

	port := FreePort(t, "127.0.0.1")
	etcdClient := FreeAddr(t, "127.0.0.1")
	etcdPeer := FreeAddr(t, "127.0.0.1")
	a.URL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	token, err := randomToken()
	if err != nil {
		t.Fatalf("rig: apiserver: %v", err)
	}
	a.Token = token
	certFile, keyFile := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	caPEM, err := writeServingCert(certFile, keyFile)
	if err != nil {
		t.Fatalf("rig: apiserver: serving certificate: %v", err)
	}
	a.CAFile = certFile
	saPub, saKey := filepath.Join(dir, "sa.pub"), filepath.Join(dir, "sa.key")
	a.SAKeyFile = saKey
	if err := writeServiceAccountKeys(saPub, saKey); err != nil {
		t.Fatalf("rig: apiserver: service-account keys: %v", err)
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", token, apiserverAdminUser, apiserverAdminUser)), 0o600); err != nil {
		t.Fatalf("rig: apiserver: %v", err)
	}

	a.args = append([]string{
		"--etcd-data-dir=" + a.DataDir,
		"--etcd-client-url=http://" + etcdClient,
		"--etcd-peer-url=http://" + etcdPeer,
		"--",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		// Pods need no "default" ServiceAccount (no controller-manager creates one).
		"--disable-admission-plugins=ServiceAccount",
		// The "kubernetes" Service gets no Endpoints: 127.0.0.1 is not a valid endpoint.
		"--endpoint-reconciler-type=none",
		// Stop in ~3 s even with watches open (the default waits up to 60 s for them).
		"--shutdown-send-retry-after=true",
		"--shutdown-watch-termination-grace-period=2s",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	}, opts.ExtraArgs...)

	a.RestConfig = &rest.Config{
		Host:            a.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		QPS:             500,
		Burst:           1000,
		Timeout:         30 * time.Second,
	}
	a.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(a.Kubeconfig, a.URL, caPEM, token); err != nil {
		t.Fatalf("rig: apiserver: kubeconfig: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	a.httpc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}

	if a.clients, err = kubernetes.NewForConfig(a.RestConfig); err != nil {
		t.Fatalf("rig: apiserver: clientset: %v", err)
	}
	if a.dyn, err = dynamic.NewForConfig(a.RestConfig); err != nil {
		t.Fatalf("rig: apiserver: dynamic client: %v", err)
	}
	if a.istio, err = istioclient.NewForConfig(a.RestConfig); err != nil {
		t.Fatalf("rig: apiserver: istio clientset: %v", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(a.RestConfig)
	if err != nil {
		t.Fatalf("rig: apiserver: discovery client: %v", err)
	}
	a.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))

	t.Cleanup(func() { a.Stop() })
	start := time.Now()
	a.start(t)
	t.Logf("rig: kube-apiserver ready at %s in %s (kubeconfig %s)", a.URL, time.Since(start).Round(time.Millisecond), a.Kubeconfig)

	if !opts.NoIstioCRDs {
		start = time.Now()
		a.installIstioCRDs(t)
		t.Logf("rig: Istio CRDs established in %s", time.Since(start).Round(time.Millisecond))
		// Where istiod (and so mizzen) runs: its CA Secrets and mesh ConfigMap live here.
		a.Apply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n")
	}
	return a
}

// start runs the binary and waits for /readyz. Cleanups (process stop, log tail
// on failure) are registered on the test that started the APIServer, so a
// Restart from a subtest doesn't tie the process to the subtest.
func (a *APIServer) start(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	a.starts++
	a.LogPath = filepath.Join(a.dir, fmt.Sprintf("kube-apiserver-%d.log", a.starts))
	a.stopOnce = false
	a.mu.Unlock()
	cmd := exec.Command(a.bin, a.args...)
	t.Logf("rig: starting kube-apiserver %s (log %s)", a.URL, a.LogPath)
	p := startProcess(cleanupOn{TB: t, owner: a.owner}, "kube-apiserver", cmd, a.LogPath, 15*time.Second)
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), apiserverStartLimit)
	defer cancel()
	err := Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		if p.Exited() {
			return fmt.Errorf("kube-apiserver exited: %v", p.waitErr)
		}
		return a.readyz(ctx)
	})
	if err != nil {
		t.Fatalf("rig: kube-apiserver not ready within %v: %v; log:\n%s", apiserverStartLimit, err, TailFile(a.LogPath, 60))
	}
}

func (a *APIServer) readyz(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	resp, err := a.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s: %s", resp.Status, tail(string(body), 5))
	}
	return nil
}

// Stop stops kube-apiserver and etcd gracefully (SIGTERM; watches are ended within
// ~3 s; SIGKILL after 15 s). The data dir is kept until the test ends, so Restart can follow. Stop is idempotent.
func (a *APIServer) Stop() {
	a.mu.Lock()
	p := a.proc
	done := a.stopOnce
	a.stopOnce = true
	a.mu.Unlock()
	if p == nil || done {
		return
	}
	p.stop(15 * time.Second)
}

// Kill ends the apiserver abruptly (SIGKILL, like a crash): open connections just
// break. Restart brings it back.
func (a *APIServer) Kill() {
	a.mu.Lock()
	p := a.proc
	a.stopOnce = true
	a.mu.Unlock()
	if p == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// Restart stops the apiserver (if it still runs) and starts it again on the same
// port with the same data dir, token and certificates, and waits for /readyz:
// clients reconnect on their own and see the same objects (with the same
// resourceVersions). Watches end; informers re-list and re-watch by themselves.
// A raw watch from a resourceVersion older than the restart gets 410 Gone.
func (a *APIServer) Restart(t testing.TB) {
	t.Helper()
	start := time.Now()
	a.Stop()
	a.start(t)
	t.Logf("rig: kube-apiserver restarted in %s", time.Since(start).Round(time.Millisecond))
}

// Running reports whether the apiserver process is up (started and not exited).
func (a *APIServer) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc != nil && !a.proc.Exited()
}

// Clientset is a typed client for the admin.
func (a *APIServer) Clientset() kubernetes.Interface { return a.clients }

// Dynamic is a dynamic client for the admin.
func (a *APIServer) Dynamic() dynamic.Interface { return a.dyn }

// Istio is a typed istio.io/client-go clientset for the admin.
func (a *APIServer) Istio() istioclient.Interface { return a.istio }

// RESTMapper maps kinds to resources via discovery (cached; reset on a miss).
func (a *APIServer) RESTMapper() meta.RESTMapper { return a.mapper }

// Apply server-side-applies every object in a multi-document YAML (or JSON)
// string, as field manager "mizzen-e2e" with force: it creates what is missing and
// updates what exists. Namespaced objects without a namespace go to "default".
// Works for any served kind: core, discovery.k8s.io, Istio CRs, CRDs.
func (a *APIServer) Apply(t testing.TB, yaml string) {
	t.Helper()
	if err := a.ApplyE(context.Background(), yaml); err != nil {
		t.Fatalf("rig: apply: %v", err)
	}
}

// ApplyE is Apply returning the error.
func (a *APIServer) ApplyE(ctx context.Context, yaml string) error {
	objs, err := decodeObjects(yaml)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		ri, err := a.resourceFor(obj)
		if err != nil {
			return err
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			return err
		}
		force := true
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = ri.Patch(callCtx, obj.GetName(), "application/apply-patch+yaml", data,
			metav1.PatchOptions{FieldManager: APIServerFieldManager, Force: &force})
		cancel()
		if err != nil {
			return fmt.Errorf("%s %s: %w", obj.GetKind(), objectKey(obj), err)
		}
	}
	return nil
}

// Delete deletes every object in a multi-document YAML string (foreground
// propagation is not needed: nothing has dependents without a controller-manager).
// Objects already gone are fine. It does not wait: most objects go at once, but a
// Namespace stays Terminating forever (no namespace controller runs).
func (a *APIServer) Delete(t testing.TB, yaml string) {
	t.Helper()
	if err := a.DeleteE(context.Background(), yaml); err != nil {
		t.Fatalf("rig: delete: %v", err)
	}
}

// DeleteE is Delete returning the error.
func (a *APIServer) DeleteE(ctx context.Context, yaml string) error {
	objs, err := decodeObjects(yaml)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		ri, err := a.resourceFor(obj)
		if err != nil {
			return err
		}
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = ri.Delete(callCtx, obj.GetName(), metav1.DeleteOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s %s: %w", obj.GetKind(), objectKey(obj), err)
		}
	}
	return nil
}

// resourceFor maps obj's kind to a dynamic resource client (namespaced as needed),
// refreshing discovery once if the kind is unknown (e.g. a CRD just established).
func (a *APIServer) resourceFor(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("object %q has no apiVersion/kind", obj.GetName())
	}
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s without metadata.name (generateName is not supported)", gvk.Kind)
	}
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		a.mapper.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace("default")
		}
		return a.dyn.Resource(m.Resource).Namespace(obj.GetNamespace()), nil
	}
	obj.SetNamespace("")
	return a.dyn.Resource(m.Resource), nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// IstioCRDsPath is kubernetes/customresourcedefinitions.gen.yaml of the
// istio.io/api module the main module uses.
func IstioCRDsPath() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m istio.io/api: %v: %s", err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("go list -m istio.io/api: module not downloaded (run go mod download)")
	}
	return filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"), nil
}

func (a *APIServer) installIstioCRDs(t testing.TB) {
	t.Helper()
	path, err := IstioCRDsPath()
	if err != nil {
		t.Fatalf("rig: Istio CRDs: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("rig: Istio CRDs: %v", err)
	}
	objs, err := decodeObjects(string(b))
	if err != nil {
		t.Fatalf("rig: Istio CRDs in %s: %v", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiserverStartLimit)
	defer cancel()
	var names []string
	for _, obj := range objs {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		names = append(names, obj.GetName())
		// Create, not apply: the CRDs are large and apply's managed fields make
		// every one slower to store; an existing CRD (a Restart) is left alone.
		_, err := a.dyn.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{FieldManager: APIServerFieldManager})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("rig: creating CRD %s: %v", obj.GetName(), err)
		}
	}
	if len(names) == 0 {
		t.Fatalf("rig: no CustomResourceDefinitions in %s", path)
	}
	if err := a.WaitForCRDs(ctx, names...); err != nil {
		t.Fatalf("rig: Istio CRDs: %v", err)
	}
}

// WaitForCRDs waits until the named CRDs are Established and their kinds are in
// discovery (the RESTMapper is reset once they are).
func (a *APIServer) WaitForCRDs(ctx context.Context, names ...string) error {
	err := Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		list, err := a.dyn.Resource(crdGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		established := map[string]bool{}
		for _, crd := range list.Items {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				cm, _ := c.(map[string]any)
				if cm["type"] == "Established" && cm["status"] == "True" {
					established[crd.GetName()] = true
				}
			}
		}
		var missing []string
		for _, n := range names {
			if !established[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not Established: %s", strings.Join(missing, ", "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.mapper.Reset()
	return nil
}

// decodeObjects splits a multi-document YAML/JSON string into objects, skipping
// empty documents and expanding kind: List.
func decodeObjects(s string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: %v", i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %v", i+1, err)
			}
			for j := range list.Items {
				objs = append(objs, &list.Items[j])
			}
			continue
		}
		objs = append(objs, u)
	}
}

func objectKey(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() != "" {
		return obj.GetNamespace() + "/" + obj.GetName()
	}
	return obj.GetName()
}

// cleanupOn is t for everything except Cleanup, which goes to owner.
type cleanupOn struct {
	testing.TB
	owner testing.TB
}

func (c cleanupOn) Cleanup(f func()) { c.owner.Cleanup(f) }

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}

// writeServingCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost (it is its own CA) and returns its PEM.
func writeServingCert(certFile, keyFile string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mizzen-e2e-kube-apiserver"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	return certPEM, nil
}

// writeServiceAccountKeys writes an ECDSA P-256 key pair (tokens are ES256).
func writeServiceAccountKeys(pubFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

func writeKubeconfig(path, server string, caPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["mizzen-e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[apiserverAdminUser] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["mizzen-e2e"] = &clientcmdapi.Context{Cluster: "mizzen-e2e", AuthInfo: apiserverAdminUser, Namespace: "default"}
	cfg.CurrentContext = "mizzen-e2e"
	return clientcmd.WriteToFile(*cfg, path)
}
