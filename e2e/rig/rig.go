// Package rig starts the real parts of an end-to-end test — Envoy, the mizzen
// binary, the echo apps — on loopback addresses, and tears them down when the test
// ends, also when it fails. See e2e/README.md.
package rig

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// handedOut remembers every port FreePort returned in this test binary: the
// kernel may offer a just-closed port again at once, and two addresses of one
// process (say --xds-addr and --monitoring-addr) must never collide.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a TCP port that is free on ip right now (e.g. "127.0.0.1")
// and that this test binary has not handed out before.
// Prefer letting the process bind port 0 where it can report the port back.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("rig: finding a free port on %s: %v", ip, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		handedOut.Lock()
		seen := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatalf("rig: no fresh free port on %s after 50 tries", ip)
	return 0
}

// FreeAddr returns "ip:<free port>".
func FreeAddr(t testing.TB, ip string) string {
	t.Helper()
	return net.JoinHostPort(ip, fmt.Sprint(FreePort(t, ip)))
}

// CheckLoopback fails the test unless addr ("host:port" or a bare IP) is in
// 127.0.0.0/8 or is the rig network's host address (NetworkHostIP, where pods
// reach mizzen): e2e tests never send traffic anywhere else.
func CheckLoopback(t testing.TB, addr string) {
	t.Helper()
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.Equal(net.ParseIP(NetworkHostIP)) {
		return
	}
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		t.Fatalf("rig: %q is neither an IPv4 loopback (127.0.0.0/8) address nor the rig network's host address %s; e2e tests talk only to those", addr, NetworkHostIP)
	}
}

// ModuleRoot is the directory holding the main module's go.mod.
func ModuleRoot() (string, error) {
	moduleRootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			moduleRootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				moduleRoot = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				moduleRootErr = fmt.Errorf("no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	return moduleRoot, moduleRootErr
}

var (
	moduleRootOnce sync.Once
	moduleRoot     string
	moduleRootErr  error
)

// process is a child process in its own process group with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{}
	waitErr error
}

// startProcess starts cmd in a new process group with stdout and stderr going to
// logPath, and registers a Cleanup that stops the whole group (SIGTERM, then SIGKILL
// after grace) and, if the test failed, prints the tail of the log.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, logPath string, grace time.Duration) *process {
	t.Helper()
	// O_APPEND: a child that opens its own stdout again (Envoy's access log to
	// /dev/stdout) writes through a second file description; appending keeps
	// the two from overwriting each other.
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("rig: %s: creating log file: %v", name, err)
	}
	cmd.Stdout = f
	cmd.Stderr = f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// If the test binary dies without running cleanups, take the child with it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: f, exited: make(chan struct{})}

	// Registered first so it runs last: after the process is gone the log is complete.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rig: %s log (%s), last lines:\n%s", name, logPath, TailFile(logPath, 60))
		} else if os.Getenv("E2E_LOGS") != "" {
			t.Logf("rig: %s log (%s):\n%s", name, logPath, TailFile(logPath, 100000))
		}
	})
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("rig: starting %s (%s): %v", name, strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(grace) })
	return p
}

// Exited reports whether the process has ended.
func (p *process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *process) stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
	}
	// Kill whatever is left of the group, also children that outlived the leader.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// TailFile returns the last n lines of the file at path (or an error note).
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// getOK GETs url and returns the body; a non-200 answer is an error that starts
// with what and carries the body.
func getOK(ctx context.Context, client *http.Client, url, what string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}
