package rig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
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
	return goTool{name: "kubectl", moduleDir: kubectlModuleDir, recipe: kubectlBuildRecipe,
		coldNote: "a few minutes"}.build(logf)
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
