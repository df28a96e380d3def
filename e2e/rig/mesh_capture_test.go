package rig

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

// The capture rules alone, without Envoy: echo servers stand in for the
// sidecar's ports (15001 outbound, 15006 inbound, 15000 admin) inside a pod, and
// the test checks which traffic each rule sends where.
func TestCaptureRules(t *testing.T) {
	n := StartNetwork(t)
	p := n.AddPod(t, "capture", "198.18.3.1")
	if out, err := exec.Command("ip", "-n", p.NetNS, "route", "add", ServiceCIDR, "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("route: %v: %s", err, out)
	}
	// Before capture: plain servers on the app port and the sidecar's ports.
	for port, name := range map[int]string{8080: "app", 15001: "outbound", 15006: "inbound", SidecarAdminPort: "admin"} {
		startEchoIn(t, p, port, name)
	}
	w := &Workload{WorkloadSpec: WorkloadSpec{Name: "capture"}, Pod: p}
	w.installCapture(t)
	t.Logf("nat table:\n%s", w.CaptureRules)

	// A host in the root namespace, for traffic leaving the pod.
	outside, err := echo.Start(net.JoinHostPort(n.HostIP, "0"), echo.Options{Service: "outside"})
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()

	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}
	fromRoot := func(url string) string {
		resp, err := client.Get(url)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		return resp.Header.Get(echo.HeaderService)
	}
	// From inside the pod as uid/gid 0 (an app) or 1337 (the proxy's).
	fromPod := func(uid, gid int, url string) string {
		args := []string{EchoClientBinary(t), "-url", url, "-n", "1", "-timeout", "2s", "-duration", "5s", "-include-headers"}
		if uid != 0 || gid != 0 {
			args = append([]string{"setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--clear-groups", "--"}, args...)
		}
		out, err := p.Command(args[0], args[1:]...).Output()
		if err != nil {
			return fmt.Sprintf("error: %v", err)
		}
		var rec echo.Record
		if err := json.Unmarshal(out, &rec); err != nil {
			return fmt.Sprintf("error: %q: %v", out, err)
		}
		if rec.Error != "" {
			return "error: " + rec.Error
		}
		return rec.Headers.Get(echo.HeaderService)
	}
	cases := []struct {
		name, got, want string
	}{
		{"inbound to the app port → 15006", fromRoot("http://" + p.IP + ":8080/"), "inbound"},
		{"inbound to another port → 15006", fromRoot("http://" + p.IP + ":9999/"), "inbound"},
		{"inbound to the admin port is not captured", fromRoot("http://" + p.IP + ":15000/"), "admin"},
		{"app → ClusterIP → 15001", fromPod(0, 0, "http://10.96.0.99/"), "outbound"},
		{"app → outside host → 15001", fromPod(0, 0, outside.URL), "outbound"},
		{"app → 127.0.0.1 is not captured", fromPod(0, 0, "http://127.0.0.1:8080/"), "app"},
		{"proxy (uid 1337) → outside host is not captured", fromPod(ProxyUID, ProxyGID, outside.URL), "outside"},
		{"proxy (uid 1337) → own pod IP goes back to inbound", fromPod(ProxyUID, ProxyGID, "http://"+p.IP+":8080/"), "inbound"},
		{"gid 1337 alone is not captured either", fromPod(0, ProxyGID, outside.URL), "outside"},
		{"app → own pod IP is not captured", fromPod(0, 0, "http://"+p.IP+":8080/"), "app"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: answered by %q, want %q", c.name, c.got, c.want)
		}
	}
}

func startEchoIn(t *testing.T, p *Pod, port int, service string) {
	t.Helper()
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	cmd := p.Command(EchoBinary(t), "-addr", addr, "-service", service, "-version", "", "-pod", "")
	proc := startProcess(t, "echo "+service, cmd, tempLog(t, "echo-"+service), 2*time.Second)
	target := net.JoinHostPort(p.IP, strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if proc.Exited() {
			t.Fatalf("echo %s exited: %s", service, TailFile(proc.logPath, 10))
		}
		if c, err := net.DialTimeout("tcp", target, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo %s not answering on %s", service, target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
