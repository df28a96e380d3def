package rig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// agentMount is one bind mount of an agent pod's mount namespace.
type agentMount struct{ source, target string }

// materialize writes the pod's volumes (as the kubelet would) under a fresh
// directory and records where each is mounted: emptyDirs owned by the proxy
// user, the downward-API podinfo files, the projected token (TokenRequest for
// the pod's ServiceAccount, audience and expiry as the volume says, bound to
// the Pod by name and UID), the root-cert ConfigMap; plus the pod's
// /etc/hosts and /etc/resolv.conf. Removed when the test ends.
func (a *Agent) materialize(t testing.TB, ctx context.Context, pod *corev1.Pod) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mizzen-e2e-agent-"+pod.Name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mkdir := func(p string, owned bool) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if owned {
			if err := os.Chown(p, ProxyUID, ProxyGID); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(p, data string) {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc-upper", "etc-work", "varlib-upper", "varlib-work"} {
		mkdir(filepath.Join(dir, d), false)
	}
	// /etc/hosts as the kubelet writes it, plus the name of the discovery
	// address (a cluster's DNS would resolve it to istiod's Service): here
	// mizzen's address on the rig network, where its secure port listens.
	write(filepath.Join(dir, "hosts"), fmt.Sprintf("# Kubernetes-managed hosts file (mizzen e2e rig).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n%s\t%s %s.cluster.local istiod.istio-system istiod\n",
		a.IP, pod.Name, NetworkHostIP, istiodName, istiodName))
	// A pod's resolv.conf. There is no cluster DNS in the rig: the nameserver
	// is the pod's loopback, so a lookup (say the agent's cloud-platform
	// probe) is refused at once instead of timing out or leaving the pod.
	write(filepath.Join(dir, "resolv.conf"), fmt.Sprintf("search %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n", pod.Namespace))

	var proxy *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "istio-proxy" {
			proxy = &pod.Spec.Containers[i]
		}
	}
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	core := a.mesh.API.Clientset().CoreV1()
	for _, vm := range proxy.VolumeMounts {
		v := volumes[vm.Name]
		if v == nil {
			t.Fatalf("rig: Pod %s/%s mounts volume %s, which it does not define", pod.Namespace, pod.Name, vm.Name)
		}
		src := filepath.Join(dir, "volumes", vm.Name)
		switch {
		case v.EmptyDir != nil:
			mkdir(src, true)
		case v.DownwardAPI != nil:
			mkdir(src, false)
			for _, item := range v.DownwardAPI.Items {
				var m map[string]string
				switch item.FieldRef.FieldPath {
				case "metadata.labels":
					m = pod.Labels
				case "metadata.annotations":
					m = pod.Annotations
				default:
					t.Fatalf("rig: Pod %s/%s volume %s: field %s not supported", pod.Namespace, pod.Name, vm.Name, item.FieldRef.FieldPath)
				}
				write(filepath.Join(src, item.Path), downwardAPIFile(m))
			}
		case v.Projected != nil:
			mkdir(src, false)
			for _, p := range v.Projected.Sources {
				sat := p.ServiceAccountToken
				if sat == nil {
					t.Fatalf("rig: Pod %s/%s volume %s: only serviceAccountToken projections are supported", pod.Namespace, pod.Name, vm.Name)
				}
				tr, err := core.ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
					Spec: authenticationv1.TokenRequestSpec{
						Audiences:         []string{sat.Audience},
						ExpirationSeconds: sat.ExpirationSeconds,
						BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
					}}, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("rig: Pod %s/%s volume %s: token for ServiceAccount %s: %v", pod.Namespace, pod.Name, vm.Name, pod.Spec.ServiceAccountName, err)
				}
				write(filepath.Join(src, sat.Path), tr.Status.Token)
				a.TokenPath = filepath.Join(src, sat.Path)
			}
		case v.ConfigMap != nil:
			mkdir(src, false)
			optional := v.ConfigMap.Optional != nil && *v.ConfigMap.Optional
			var cm *corev1.ConfigMap
			var err error
			if optional {
				// Nobody publishes istio-ca-crl: a missing optional
				// ConfigMap is an empty volume.
				if cm, err = core.ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					cm, err = &corev1.ConfigMap{}, nil
				}
			} else {
				// mizzen publishes istio-ca-root-cert shortly after a namespace appears.
				err = Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
					var err error
					cm, err = core.ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
					return err
				})
			}
			if err != nil {
				t.Fatalf("rig: Pod %s/%s volume %s: ConfigMap %s: %v", pod.Namespace, pod.Name, vm.Name, v.ConfigMap.Name, err)
			}
			for k, d := range cm.Data {
				write(filepath.Join(src, k), d)
				if k == "root-cert.pem" {
					a.RootCertPath = filepath.Join(src, k)
				}
			}
		case v.Secret != nil:
			mkdir(src, false)
			sec, err := core.Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err) && v.Secret.Optional != nil && *v.Secret.Optional:
			case err != nil:
				t.Fatalf("rig: Pod %s/%s volume %s: Secret %s: %v", pod.Namespace, pod.Name, vm.Name, v.Secret.SecretName, err)
			default:
				for k, d := range sec.Data {
					write(filepath.Join(src, k), string(d))
				}
			}
		default:
			t.Fatalf("rig: Pod %s/%s volume %s: kind not supported by the rig", pod.Namespace, pod.Name, vm.Name)
		}
		a.mounts = append(a.mounts, agentMount{source: src, target: vm.MountPath})
	}
	return dir
}

// start runs the container: `ip netns exec <pod>` (the pod's network), then
// `unshare --mount --propagation private` (a mount namespace of its own, so
// nothing mounted here is seen outside it, and it goes away with its last
// process), where a shell mounts: an overlay over /etc and /var/lib (the
// agent's directories appear there without touching the host's; writes land
// in the pod's temp dir), the pod's hosts and resolv.conf, a tmpfs over /run
// (= /var/run), and every volume at its mountPath; then, from /, it drops to
// uid/gid 1337 (setpriv, parent-death signal KILL) and execs pilot-agent with
// only the container's env (plus PATH, HOME and HOSTNAME as a container gets
// them). The rig stops the whole process group (agent and Envoy) at the end.
func (a *Agent) start(t testing.TB) {
	t.Helper()
	d := a.Dir
	script := []string{
		"set -e",
		fmt.Sprintf("mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc", filepath.Join(d, "etc-upper"), filepath.Join(d, "etc-work")),
		fmt.Sprintf("mount --bind %q /etc/hosts", filepath.Join(d, "hosts")),
		fmt.Sprintf("mount --bind %q /etc/resolv.conf", filepath.Join(d, "resolv.conf")),
		fmt.Sprintf("mount -t overlay overlay -o lowerdir=/var/lib,upperdir=%s,workdir=%s /var/lib", filepath.Join(d, "varlib-upper"), filepath.Join(d, "varlib-work")),
		"mount -t tmpfs -o mode=0755 tmpfs /run",
	}
	for _, m := range a.mounts {
		script = append(script, fmt.Sprintf("mkdir -p %q", m.target), fmt.Sprintf("mount --bind %q %q", m.source, m.target))
	}
	script = append(script, "cd /",
		fmt.Sprintf(`exec setpriv --reuid %d --regid %d --clear-groups --pdeathsig KILL -- "$@"`, ProxyUID, ProxyGID))
	full := append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", strings.Join(script, "\n"), "sh"}, a.Argv...)
	cmd := a.Pod.Command(full[0], full[1:]...)
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "HOSTNAME=" + a.Name}
	keys := make([]string, 0, len(a.Env))
	for k := range a.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+a.Env[k])
	}
	cmd.Env = env
	t.Logf("rig: agent pod %s/%s: %s (log %s)", a.Namespace, a.Name, strings.Join(a.Argv, " "), a.LogPath)
	a.proc = startProcess(t, "pilot-agent "+a.Namespace+"/"+a.Name, cmd, a.LogPath, 3*time.Second)
}

var (
	agentFilesMu  sync.Mutex
	agentBinaries = map[string]string{}
	agentTemplate string
)

// agentUserBinary makes a binary reachable by the proxy user: the cache lives
// under /root (0700), so it is hard-linked (else copied) into the test
// binary's 0755 tools directory, once.
func agentUserBinary(t testing.TB, name, bin string) string {
	t.Helper()
	agentFilesMu.Lock()
	defer agentFilesMu.Unlock()
	if p, ok := agentBinaries[name]; ok {
		return p
	}
	toolsMu.Lock()
	dir, err := sharedToolsDir()
	toolsMu.Unlock()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	dst := filepath.Join(dir, name)
	if err := os.Link(bin, dst); err != nil {
		if err := copyFile(bin, dst, 0o755); err != nil {
			t.Fatalf("rig: making %s executable for the proxy user: %v", name, err)
		}
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatalf("rig: %v", err)
	}
	agentBinaries[name] = dst
	return dst
}

// agentBootstrapTemplate is Istio's Envoy bootstrap template,
// tools/packaging/common/envoy_bootstrap.json of the istio.io/istio module
// (what the proxyv2 image ships as envoy_bootstrap_tmpl.json), copied into the
// tools directory for the proxy user to read; never into the repository.
func agentBootstrapTemplate(t testing.TB) string {
	t.Helper()
	agentFilesMu.Lock()
	defer agentFilesMu.Unlock()
	if agentTemplate != "" {
		return agentTemplate
	}
	src := filepath.Join(IstioModuleDir(t), "tools", "packaging", "common", "envoy_bootstrap.json")
	toolsMu.Lock()
	dir, err := sharedToolsDir()
	toolsMu.Unlock()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	dst := filepath.Join(dir, "envoy_bootstrap_tmpl.json")
	_ = os.Remove(dst)
	if err := copyFile(src, dst, 0o644); err != nil {
		t.Fatalf("rig: Istio's bootstrap template: %v", err)
	}
	agentTemplate = dst
	return dst
}
