package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
	"github.com/mizzenmesh/mizzen/pkg/demo"
)

// uiCheck is the JSON line e2e/browser/ui.mjs prints.
type uiCheck struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Error  string `json:"error"`
	A11y   struct {
		Unlabelled  []string `json:"unlabelled"`
		LowContrast []string `json:"lowContrast"`
		Checked     int      `json:"checked"`
		Focusable   []string `json:"focusable"`
	} `json:"a11y"`
	ConsoleErrors []string `json:"consoleErrors"`
	Text          string   `json:"text"`
}

// browserDir is e2e/browser, checked for what `make browser` installs.
func browserDir(t *testing.T) string {
	t.Helper()
	root, err := rig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "e2e", "browser")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed: run `make browser` (apt-get install nodejs npm chromium; npm ci in e2e/browser)")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("/usr/bin/chromium is missing: run `make browser` (apt-get install chromium)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed in %s: run `make browser` (npm ci there)", dir)
	}
	return dir
}

// artifactsDir keeps the screenshots after the test: under
// $MIZZEN_E2E_ARTIFACTS, else the system temp dir.
func artifactsDir(t *testing.T) string {
	base := os.Getenv("MIZZEN_E2E_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "mizzen-e2e-artifacts")
	}
	dir := filepath.Join(base, t.Name()+"-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// TestWebUI drives the web view of `make run`'s world in real headless
// Chromium (issue 16): the proxies page lists the gateway SYNCED; the mesh
// page shows reviews' 90/10; after a VirtualService edit the changes page
// shows that change ACKed by the gateway with a latency; the explain page
// shows a verdict; a real Envoy that NACKs (a static cluster named like one
// mizzen pushes) shows NACKED with Envoy's message. Every page is
// screenshotted and audited: every control labelled, text contrast ≥ 4.5:1,
// the navigation reachable by keyboard.
func TestWebUI(t *testing.T) {
	bdir := browserDir(t)
	shots := artifactsDir(t)
	d := rig.StartDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	check := func(t *testing.T, name, page, check string, params any) uiCheck {
		t.Helper()
		spec, _ := json.Marshal(map[string]any{"base": d.UIURL, "page": page, "check": check, "params": params,
			"screenshot": filepath.Join(shots, name+".png"), "timeoutMs": 20000})
		cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, "node", filepath.Join(bdir, "ui.mjs"), string(spec))
		cmd.Dir = bdir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node ui.mjs %s: %v\n%s\n%s", name, err, out, stderr.String())
		}
		var r uiCheck
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatalf("ui.mjs %s: %v\n%s", name, err, out)
		}
		t.Logf("%s: %q (%s, %d texts audited)", name, r.Detail, time.Since(start).Round(time.Millisecond), r.A11y.Checked)
		if !r.OK {
			t.Errorf("%s: the check %s never held (%s); page text:\n%s", name, check, r.Error, r.Text)
		}
		if len(r.A11y.Unlabelled) > 0 {
			t.Errorf("%s: controls without a label: %v", name, r.A11y.Unlabelled)
		}
		if len(r.A11y.LowContrast) > 0 {
			t.Errorf("%s: text below 4.5:1 contrast: %v", name, r.A11y.LowContrast)
		}
		if r.A11y.Checked == 0 {
			t.Errorf("%s: the contrast audit saw no text", name)
		}
		focus := strings.Join(r.A11y.Focusable, "|")
		for _, want := range []string{"Skip to content", "Proxies", "Changes", "Mesh", "Explain"} {
			if !strings.Contains(focus, want) {
				t.Errorf("%s: Tab from the top does not reach %q (focus went %v)", name, want, r.A11y.Focusable)
			}
		}
		if len(r.ConsoleErrors) > 0 {
			t.Errorf("%s: script errors: %v", name, r.ConsoleErrors)
		}
		return r
	}

	t.Run("proxies", func(t *testing.T) {
		check(t, "proxies", "", "proxySynced", map[string]any{"proxy": d.GatewayNodeID})
	})
	t.Run("mesh", func(t *testing.T) {
		check(t, "mesh", "mesh", "meshWeights", map[string]any{"service": "default/reviews", "weights": map[string]int{"v1": 90, "v2": 10}})
	})
	t.Run("changes", func(t *testing.T) {
		vs, err := os.ReadFile(filepath.Join(d.ConfigDir, "virtualservice.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		at := d.WriteConfig(t, "virtualservice.yaml",
			strings.Replace(strings.Replace(string(vs), "weight: 90", "weight: 80", 1), "weight: 10", "weight: 20", 1))
		id := waitChangeAcked(t, ctx, d, at)
		check(t, "changes", fmt.Sprintf("changes#change-%d", id), "changeAcked", map[string]any{"proxy": d.GatewayNodeID, "id": id})
	})
	t.Run("explain", func(t *testing.T) {
		q := "explain?proxy=" + urlQuery(d.GatewayNodeID) + "&url=" + urlQuery("http://127.0.0.20/api/v1/reviews/1")
		check(t, "explain", q, "explainVerdict", map[string]any{"contains": "ROUTED to outbound|9080|v1|reviews.default.svc.cluster.local"})
	})
	t.Run("nack", func(t *testing.T) {
		id, msg := startNackingGateway(t, ctx, d)
		// The page must show Envoy's own words: the start of its message.
		check(t, "proxies-nacked", "", "proxyNacked", map[string]any{"proxy": id, "message": firstRunes(msg, 60)})
	})
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "~", "%7E", "|", "%7C", ":", "%3A", "/", "%2F", "&", "%26", "=", "%3D").Replace(s)
}

func firstRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// waitChangeAcked waits for the first config change seen after at that the
// gateway ACKed, from /debug/changes, and returns its ID.
func waitChangeAcked(t *testing.T, ctx context.Context, d *rig.Demo, at time.Time) uint64 {
	t.Helper()
	var id uint64
	err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		var changes []struct {
			ID      uint64    `json:"id"`
			At      time.Time `json:"at"`
			Proxies map[string]struct {
				State string `json:"state"`
			} `json:"proxies"`
		}
		if err := getJSON(ctx, "http://"+d.MonitoringAddr+"/debug/changes", &changes); err != nil {
			return err
		}
		for _, c := range changes {
			if c.At.Before(at.Add(-time.Second)) {
				continue
			}
			if p, ok := c.Proxies[d.GatewayNodeID]; ok && p.State == "ACKED" {
				id = c.ID
				return nil
			}
		}
		return fmt.Errorf("no change after the edit ACKed by the gateway yet (%d changes)", len(changes))
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// startNackingGateway runs a second real Envoy gateway (127.0.0.21) after
// the test took its port 80, so Envoy cannot bind the listener mizzen pushes
// and rejects the LDS update: a NACK in Envoy's own words, for a reason a
// user meets (a port in use). It returns the proxy's node ID and the NACK
// message mizzen recorded.
func startNackingGateway(t *testing.T, ctx context.Context, d *rig.Demo) (string, string) {
	t.Helper()
	const ip = "127.0.0.21"
	id := demo.GatewayNodeID(ip)
	squat, err := net.Listen("tcp", ip+":80")
	if err != nil {
		t.Fatalf("taking %s:80 for the NACK: %v", ip, err)
	}
	t.Cleanup(func() { squat.Close() })
	raw, err := demo.GatewayBootstrap(ip, "127.0.0.1:15010", ip+":15000")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bootstrap.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	envoy, err := rig.EnvoyPath()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "envoy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(envoy, "-c", path, "--disable-hot-restart", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	var msg string
	err = rig.Eventually(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		var rows []struct {
			Proxy string `json:"proxy"`
			Types map[string]struct {
				State       string `json:"state"`
				NackMessage string `json:"nack_message"`
			} `json:"types"`
		}
		if err := getJSON(ctx, "http://"+d.MonitoringAddr+"/debug/syncz", &rows); err != nil {
			return err
		}
		for _, r := range rows {
			if r.Proxy == id && r.Types["lds"].State == "NACKED" {
				msg = r.Types["lds"].NackMessage
				return nil
			}
		}
		return fmt.Errorf("%s not NACKED for LDS yet", id)
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "envoy.log"))
		t.Fatalf("%v\nenvoy log:\n%s", err, log)
	}
	t.Logf("Envoy's NACK: %s", msg)
	return id, msg
}
