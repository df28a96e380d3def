package rig

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// The test-only kube-apiserver (+ embedded etcd) lives in its own Go module,
// e2e/apiserver, built and cached like every test tool (goTool, toolbuild.go).
const (
	apiserverModuleDir   = "e2e/apiserver"
	apiserverBuildRecipe = "go build -ldflags=-s -w v1"
)

var (
	apiserverBinOnce sync.Once
	apiserverBin     string
	apiserverBinErr  error
)

// APIServerBinary returns the path of the cached test kube-apiserver binary,
// building it first if needed (cold: several minutes on 2 cores; no deadline,
// progress is printed every 30 s). $MIZZEN_APISERVER_BIN overrides it with a prebuilt binary. A failed
// build fails the test — it never skips — with the build output.
func APIServerBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MIZZEN_APISERVER_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("rig: MIZZEN_APISERVER_BIN=%s: %v", p, err)
		}
		return p
	}
	apiserverBinOnce.Do(func() {
		apiserverBin, apiserverBinErr = buildAPIServer(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "rig: "+format+"\n", args...)
		})
	})
	if apiserverBinErr != nil {
		t.Fatalf("rig: cannot get the test kube-apiserver (module %s): %v", apiserverModuleDir, apiserverBinErr)
	}
	return apiserverBin
}

// BuildAPIServer builds (or finds cached) the test kube-apiserver outside a test,
// so `make test` can pay the cold build before the e2e timeouts start.
func BuildAPIServer(logf func(string, ...any)) (string, error) { return buildAPIServer(logf) }

func buildAPIServer(logf func(string, ...any)) (string, error) {
	return goTool{name: "kube-apiserver", moduleDir: apiserverModuleDir, recipe: apiserverBuildRecipe,
		coldNote: "several minutes"}.build(logf)
}
