package rig

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The rig's test network. Workloads that must look like pods to Kubernetes (a
// real apiserver refuses loopback endpoint addresses) live in network namespaces
// attached to a bridge, inside a namespace of the rig's own:
//
//	root netns (tests, mizzen, gateway Envoy)
//	   mzh-<id> 198.18.0.1/16 ──veth── [rig netns mzr-<id>: bridge br0] ──veth── pod netns mzp-<id>-<n>: eth0 <pod ip>/16
//
// Addresses come from 198.18.0.0/15, the benchmarking range (RFC 2544) that no
// real network routes. Pods get no default route, and the rig turns on no
// forwarding, so nothing in them can reach a real interface. Everything is
// deleted when the test ends, also on failure; namespaces left by a test binary
// that was killed are removed by the next run.
const (
	NetworkCIDR   = "198.18.0.0/16"
	NetworkHostIP = "198.18.0.1"
	netnsPrefix   = "mz"
)

// Network is the rig's bridge and its namespaces.
type Network struct {
	HostIP string // the root namespace's address on the network

	id     string
	rigNS  string
	hostIf string
	pods   atomic.Int32
}

var networkSeq atomic.Int32

// StartNetwork creates the bridge namespace and the root namespace's veth into it.
// It needs root and iproute2; without them the test fails (never skips).
func StartNetwork(t testing.TB) *Network {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("rig: the `ip` command (iproute2) is required for the test network: %v", err)
	}
	// One rig network per machine at a time: every network uses the same
	// addresses, so a second test binary waits for the first one's to go.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "mizzen-e2e-network.lock"), 15*time.Minute,
		func() { t.Logf("rig: waiting for another test binary's network to be torn down") })
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	t.Cleanup(unlock) // registered first, so it runs after the teardown below
	removeStaleNamespaces()
	n := &Network{HostIP: NetworkHostIP, id: fmt.Sprintf("%x-%d", os.Getpid()&0xffff, networkSeq.Add(1))}
	n.rigNS = netnsPrefix + "r-" + n.id
	n.hostIf = netnsPrefix + "h-" + n.id
	t.Cleanup(n.teardown)
	steps := [][]string{
		{"netns", "add", n.rigNS},
		{"-n", n.rigNS, "link", "set", "lo", "up"},
		{"-n", n.rigNS, "link", "add", "br0", "type", "bridge"},
		{"-n", n.rigNS, "link", "set", "br0", "up"},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", "host", "netns", n.rigNS},
		{"-n", n.rigNS, "link", "set", "host", "master", "br0"},
		{"-n", n.rigNS, "link", "set", "host", "up"},
		{"addr", "add", n.HostIP + "/16", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("rig: ip %s: %v: %s (the test network needs root)", strings.Join(s, " "), err, out)
		}
	}
	return n
}

func (n *Network) teardown() {
	for i := n.pods.Load(); i >= 1; i-- {
		// Every process the rig started is gone by now (their cleanups ran first);
		// this only catches a straggler, so the namespace really goes.
		killNamespacePids(n.podNS(int(i)))
		_ = exec.Command("ip", "netns", "del", n.podNS(int(i))).Run()
	}
	_ = exec.Command("ip", "link", "del", n.hostIf).Run()
	_ = exec.Command("ip", "netns", "del", n.rigNS).Run()
}

func (n *Network) podNS(i int) string { return fmt.Sprintf("%sp-%s-%d", netnsPrefix, n.id, i) }

// Pod is one network namespace on the rig's network, like a pod's.
type Pod struct {
	Name  string
	IP    string
	NetNS string
}

// AddPod creates a pod namespace with eth0 at ip (inside NetworkCIDR) and lo up.
func (n *Network) AddPod(t testing.TB, name, ip string) *Pod {
	t.Helper()
	_, cidr, _ := net.ParseCIDR(NetworkCIDR)
	if parsed := net.ParseIP(ip); parsed == nil || !cidr.Contains(parsed) || ip == n.HostIP {
		t.Fatalf("rig: pod %s: address %q is not a free address of %s", name, ip, NetworkCIDR)
	}
	i := int(n.pods.Add(1))
	p := &Pod{Name: name, IP: ip, NetNS: n.podNS(i)}
	bridgeIf := fmt.Sprintf("p%d", i)
	steps := [][]string{
		{"netns", "add", p.NetNS},
		{"-n", p.NetNS, "link", "set", "lo", "up"},
		{"-n", n.rigNS, "link", "add", bridgeIf, "type", "veth", "peer", "name", "eth0", "netns", p.NetNS},
		{"-n", n.rigNS, "link", "set", bridgeIf, "master", "br0"},
		{"-n", n.rigNS, "link", "set", bridgeIf, "up"},
		{"-n", p.NetNS, "addr", "add", ip + "/16", "dev", "eth0"},
		{"-n", p.NetNS, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("rig: pod %s: ip %s: %v: %s", name, strings.Join(s, " "), err, out)
		}
	}
	return p
}

// Command returns a command that runs inside the pod's network namespace.
func (p *Pod) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", p.NetNS, name}, args...)...)
}

// StartEcho runs the echo app inside the pod on <pod ip>:port and waits until it
// answers from the root namespace (≤ 10 s).
func (p *Pod) StartEcho(t testing.TB, port int, service, version string) {
	t.Helper()
	addr := net.JoinHostPort(p.IP, strconv.Itoa(port))
	cmd := p.Command(EchoBinary(t), "-addr", addr, "-service", service, "-version", version, "-pod", p.Name)
	proc := startProcess(t, "echo "+p.Name, cmd, filepath.Join(t.TempDir(), "echo-"+p.Name+".log"), 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if proc.Exited() {
			t.Fatalf("rig: echo app in pod %s exited: %v\n%s", p.Name, proc.waitErr, TailFile(proc.logPath, 20))
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("rig: echo app in pod %s not answering on %s", p.Name, addr)
}

// EchoBinary builds the echo app (./e2e/echo/cmd/echo) once per test binary run.
func EchoBinary(t testing.TB) string {
	t.Helper()
	return toolBinary(t, "./e2e/echo/cmd/echo")
}

// EchoClientBinary builds the echo client (./e2e/echo/cmd/echoclient) once per
// test binary run.
func EchoClientBinary(t testing.TB) string {
	t.Helper()
	return toolBinary(t, "./e2e/echo/cmd/echoclient")
}

var (
	toolsMu    sync.Mutex
	toolsDir   string
	toolsBuilt = map[string]string{} // package → binary
	toolsErr   = map[string]error{}
)

// sharedToolsDir is a 0755 directory for the test binary's helper programs
// (readable and executable by the sidecar's uid 1337 too); CleanupBuilds removes it.
// Call with toolsMu held.
func sharedToolsDir() (string, error) {
	if toolsDir != "" {
		return toolsDir, nil
	}
	dir, err := os.MkdirTemp("", "mizzen-e2e-tools-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	toolsDir = dir
	return dir, nil
}

// toolBinary builds a main package of this module once per test binary run.
func toolBinary(t testing.TB, pkg string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if bin, ok := toolsBuilt[pkg]; ok {
		return bin
	}
	if err, ok := toolsErr[pkg]; ok {
		t.Fatalf("rig: %v", err)
	}
	bin, err := func() (string, error) {
		root, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		dir, err := sharedToolsDir()
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		return bin, nil
	}()
	if err != nil {
		toolsErr[pkg] = err
		t.Fatalf("rig: %v", err)
	}
	toolsBuilt[pkg] = bin
	return bin
}

// killNamespacePids SIGKILLs the processes still inside a network namespace the
// rig created (e.g. a sidecar whose test binary was killed), by pid.
func killNamespacePids(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeStaleNamespaces deletes rig namespaces (and their host veths) whose test
// binary is gone: the pid is encoded in the id.
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		name := fields[0]
		var kind byte
		var rest string
		if len(name) < 4 || !strings.HasPrefix(name, netnsPrefix) || name[3] != '-' {
			continue
		}
		kind, rest = name[2], name[4:]
		if kind != 'r' && kind != 'p' {
			continue
		}
		if processAlive(strings.SplitN(rest, "-", 2)[0]) {
			continue
		}
		killNamespacePids(name)
		_ = exec.Command("ip", "netns", "del", name).Run()
		if kind == 'r' {
			_ = exec.Command("ip", "link", "del", netnsPrefix+"h-"+rest).Run()
		}
	}
}

// processAlive: hexPid is the low 16 bits of the creating test binary's pid; it
// counts as alive if any live process has those low bits.
// Being conservative here only delays cleanup, never removes a live test's network.
func processAlive(hexPid string) bool {
	low, err := strconv.ParseUint(hexPid, 16, 32)
	if err != nil {
		return true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || uint64(pid)&0xffff != low {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}
