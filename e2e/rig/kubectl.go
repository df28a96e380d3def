package rig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real kubectl, for tests that must do what a user does (`kubectl apply
// --dry-run=server -k deploy/`, `kubectl apply -f` of a refused object). It is
// built from k8s.io/kubectl at the test apiserver's release in its own module,
// e2e/kubectl, and cached by content hash next to the apiserver:
//
//	<cache>/kubectl-<hash>        the binary
//	<cache>/kubectl-<hash>.lock   flock(2) held while building
//	<cache>/kubectl-<hash>.log    output of the last build
//
// <hash> covers e2e/kubectl's go.mod, go.sum and *.go, the Go toolchain and
// kubectlBuildRecipe. Cold (empty build cache): about 4.5 minutes on 2 cores.
const (
	kubectlModuleDir   = "e2e/kubectl"
	kubectlBuildRecipe = "go build -ldflags=-s -w v1"
	kubectlBuildLimit  = 15 * time.Minute
)

var (
	kubectlBinOnce sync.Once
	kubectlBin     string
	kubectlBinErr  error
)

// KubectlBinary returns the cached kubectl, building it first if needed.
// $MIZZEN_KUBECTL_BIN overrides it. A failed build fails the test (never
// skips) with the build output.
func KubectlBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MIZZEN_KUBECTL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("rig: MIZZEN_KUBECTL_BIN=%s: %v", p, err)
		}
		return p
	}
	kubectlBinOnce.Do(func() {
		kubectlBin, kubectlBinErr = BuildKubectl(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "rig: "+format+"\n", args...)
		})
	})
	if kubectlBinErr != nil {
		t.Fatalf("rig: cannot get kubectl (module %s): %v", kubectlModuleDir, kubectlBinErr)
	}
	return kubectlBin
}

// BuildKubectl builds (or finds cached) kubectl outside a test, so `make
// test` pays the cold build before the e2e timeouts start.
func BuildKubectl(logf func(string, ...any)) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join(root, kubectlModuleDir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is not on PATH: %v", err)
	}
	hash, err := moduleHash(goBin, modDir, kubectlBuildRecipe)
	if err != nil {
		return "", err
	}
	cacheDir, err := APIServerCacheDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating cache dir: %v", err)
	}
	bin := filepath.Join(cacheDir, "kubectl-"+hash)
	if isExecutable(bin) {
		return bin, nil
	}
	unlock, err := lockFile(bin+".lock", kubectlBuildLimit+time.Minute, func() {
		logf("waiting for another process building kubectl (%s.lock)", bin)
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) {
		return bin, nil
	}
	tmp, err := os.CreateTemp(cacheDir, ".kubectl-"+hash+"-*.tmp")
	if err != nil {
		return "", err
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath)

	logPath := bin + ".log"
	logf("building kubectl from %s into %s (cold: a few minutes; log %s)", modDir, bin, logPath)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlBuildLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-ldflags=-s -w", "-o", tmpPath, ".")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", kubectlBuildLimit)
		}
		return "", fmt.Errorf("go build in %s failed: %v\n%s", modDir, err, tail(string(out), 60))
	}
	if err := os.Chmod(tmpPath, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmpPath, bin); err != nil {
		return "", err
	}
	logf("built kubectl in %s", time.Since(start).Round(time.Second))
	return bin, nil
}

// moduleHash hashes what determines a tool module's binary: go.mod, go.sum,
// its top-level Go files, the toolchain and target, and the recipe.
func moduleHash(goBin, modDir, recipe string) (string, error) {
	goFiles, err := filepath.Glob(filepath.Join(modDir, "*.go"))
	if err != nil {
		return "", err
	}
	sort.Strings(goFiles)
	names := []string{"go.mod", "go.sum"}
	for _, f := range goFiles {
		names = append(names, filepath.Base(f))
	}
	h := sha256.New()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(modDir, name))
		if err != nil {
			return "", fmt.Errorf("reading module %s: %v", modDir, err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	env := exec.Command(goBin, "env", "GOVERSION", "GOOS", "GOARCH")
	env.Dir = modDir
	env.Env = append(os.Environ(), "GOWORK=off")
	out, err := env.Output()
	if err != nil {
		return "", fmt.Errorf("go env: %v", err)
	}
	h.Write(out)
	io.WriteString(h, recipe)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// KubectlResult is the outcome of one kubectl run.
type KubectlResult struct {
	Stdout, Stderr string
	Err            error // nil on exit status 0
}

// Kubectl runs the real kubectl against the apiserver as its admin (the
// rig's kubeconfig), from dir (for relative -f/-k paths; "" = the module
// root), bounded by 2 minutes.
func (a *APIServer) Kubectl(t testing.TB, dir string, args ...string) KubectlResult {
	t.Helper()
	bin := KubectlBinary(t)
	if dir == "" {
		root, err := ModuleRoot()
		if err != nil {
			t.Fatalf("rig: %v", err)
		}
		dir = root
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--kubeconfig", a.Kubeconfig}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Dir = dir
	// No user config from the machine running the tests (~/.kube/config,
	// ~/.kuberc) may change what kubectl does here.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+a.Kubeconfig, "KUBERC=off", "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("rig: kubectl %s: %v\n%s%s", strings.Join(args, " "), errOrOK(err), indent(stdout.String()), indent(stderr.String()))
	return KubectlResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func indent(s string) string {
	if s = strings.TrimRight(s, "\n"); s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
