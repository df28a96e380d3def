package rig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Demo is a running `make run` (cmd/mizzen-demo, pkg/demo) as a test drives
// it: the same command on a copy of examples/bookinfo, so a test can edit the
// config without touching the checkout. It uses the fixed addresses `make
// run` prints (mizzen's 127.0.0.1:15010/15012/15014, the gateway on
// 127.0.0.20:80 and the apps on 127.0.1.N:9080), so it takes the bookinfo
// lock like Bookinfo does.
type Demo struct {
	ConfigDir      string // the watched copy of examples/bookinfo
	WorkDir        string // the demo's --work-dir: logs, CA, gateway bootstrap
	GatewayURL     string // http://127.0.0.20
	UIURL          string // http://127.0.0.1:15014/ui/
	MonitoringAddr string
	GatewayNodeID  string

	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	mu      sync.Mutex
	out     strings.Builder
	staging string
}

var (
	demoBuildOnce sync.Once
	demoBin       string
	demoBuildErr  error
)

// DemoBinary builds cmd/mizzen-demo once per test binary.
func DemoBinary(t testing.TB) string {
	t.Helper()
	demoBuildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			demoBuildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "mizzen-e2e-demo-build-")
		if err != nil {
			demoBuildErr = err
			return
		}
		demoBin = filepath.Join(dir, "mizzen-demo")
		cmd := exec.Command("go", "build", "-o", demoBin, "./cmd/mizzen-demo")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			demoBuildErr = fmt.Errorf("go build ./cmd/mizzen-demo: %v\n%s", err, out)
		}
	})
	if demoBuildErr != nil {
		t.Fatalf("rig: %v", demoBuildErr)
	}
	return demoBin
}

// StartDemo runs the demo on a copy of examples/bookinfo and waits (≤ 90 s)
// for its banner. If the test does not Interrupt it, cleanup does.
func StartDemo(t testing.TB) *Demo {
	t.Helper()
	if _, err := EnvoyPath(); err != nil {
		t.Fatalf("rig: %v", err)
	}
	mizzen := MizzenBinary(t)
	bin := DemoBinary(t)
	unlock, err := lockFile(filepath.Join(os.TempDir(), "mizzen-e2e-bookinfo.lock"), 15*time.Minute,
		func() { t.Logf("rig: waiting for another test binary's bookinfo to be torn down") })
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	t.Cleanup(unlock)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	d := &Demo{ConfigDir: t.TempDir(), WorkDir: t.TempDir(), staging: t.TempDir(), done: make(chan struct{}),
		GatewayURL: "http://127.0.0.20", MonitoringAddr: "127.0.0.1:15014", UIURL: "http://127.0.0.1:15014/ui/",
		GatewayNodeID: GatewayNodeID(DefaultGatewayIP)}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "bookinfo", "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("rig: %v", err)
		}
		if err := os.WriteFile(filepath.Join(d.ConfigDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatalf("rig: %v", err)
		}
	}
	d.cmd = exec.Command(bin, "--mizzen", mizzen, "--config-dir", d.ConfigDir, "--work-dir", d.WorkDir)
	// Its own process group, as a shell gives `make run`: the test's SIGINT
	// goes to the demo alone, like Ctrl-C to the foreground job.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	d.cmd.Stderr = d.cmd.Stdout
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("rig: starting %s: %v", bin, err)
	}
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "mizzen demo is up") {
				once.Do(func() { close(banner) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-d.done:
			case <-time.After(20 * time.Second):
				_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
				<-d.done
			}
		}
		// Whatever a broken demo left behind, by the work dir only it uses.
		for _, pid := range d.Leftovers() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("demo output:\n%s", d.Output())
			for _, name := range []string{"mizzen.log", "gateway.log"} {
				b, _ := os.ReadFile(filepath.Join(d.WorkDir, name))
				t.Logf("demo %s (tail):\n%s", name, tail(string(b), 40))
			}
		}
	})
	select {
	case <-banner:
	case <-d.done:
		t.Fatalf("rig: the demo exited before it was up (%v):\n%s", d.exitErr, d.Output())
	case <-time.After(90 * time.Second):
		t.Fatalf("rig: no banner from the demo within 90 s:\n%s", d.Output())
	}
	return d
}

// Output is what the demo printed so far.
func (d *Demo) Output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// WriteConfig atomically replaces a file of the watched config dir.
func (d *Demo) WriteConfig(t testing.TB, name, content string) time.Time {
	t.Helper()
	return WriteFileAtomic(t, d.staging, filepath.Join(d.ConfigDir, name), content)
}

// Interrupt sends SIGINT (Ctrl-C) and waits ≤ 20 s for the demo to exit;
// it returns the exit error (nil: exit status 0).
func (d *Demo) Interrupt(ctx context.Context) error {
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
		return d.exitErr
	case <-time.After(20 * time.Second):
		return errors.New("the demo did not exit within 20 s of SIGINT")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pid is the demo's process ID.
func (d *Demo) Pid() int { return d.cmd.Process.Pid }

// Leftovers are the live processes that name the demo's work dir on their
// command line (mizzen's --ca-dir, the gateway's bootstrap) or whose parent
// is the demo: after a clean exit there must be none.
func (d *Demo) Leftovers() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if st := string(stat); strings.Contains(st, ") Z ") {
			continue // a zombie holds nothing
		}
		ppid := -1
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			if f := strings.Fields(string(stat)[i+1:]); len(f) > 1 {
				ppid, _ = strconv.Atoi(f[1])
			}
		}
		if strings.Contains(string(cmdline), d.WorkDir) || (ppid == d.cmd.Process.Pid && pid != d.cmd.Process.Pid) {
			out = append(out, pid)
		}
	}
	return out
}
