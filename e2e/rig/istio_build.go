package rig

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Istio's own binaries — pilot-agent (the sidecar agent), istioctl and
// pilot-discovery (istiod) — for the tests that check mizzen against the real
// thing. They come from istio.io/istio on the Go module proxy, pinned in their
// own module, e2e/istio (nothing of Istio's is copied into this repository),
// and are built by one `go build -o <dir>/ <the three packages>` (they share
// most of their compile work) into the rig's cache like every test tool
// (goTool, toolbuild.go):
//
//	<cache>/istio-<hash>/{pilot-agent,istioctl,pilot-discovery}
//	<cache>/istio-<hash>.lock   flock(2) held while building
//	<cache>/istio-<hash>.log    `go build -v` output of the last build
//
// The binaries carry the version Istio's own Makefile gives a build of that
// source ("<VERSION file>-dev"), so pilot-agent reports it as ISTIO_VERSION.
const (
	istioModuleDir   = "e2e/istio"
	istioModulePath  = "istio.io/istio"
	istioBuildRecipe = "go build -v -o dir/ v1"
)

// IstioBinaryNames are the binaries BuildIstio builds.
var IstioBinaryNames = []string{"pilot-agent", "istioctl", "pilot-discovery"}

var istioPkgs = []string{
	"istio.io/istio/pilot/cmd/pilot-agent",
	"istio.io/istio/istioctl/cmd/istioctl",
	"istio.io/istio/pilot/cmd/pilot-discovery",
}

var (
	istioBinOnce sync.Once
	istioBinDir  string
	istioBinErr  error

	istioSrcOnce sync.Once
	istioSrcDir  string
	istioSrcErr  error
)

// IstioBinary returns the path of Istio's "pilot-agent", "istioctl" or
// "pilot-discovery", building all three first if needed (cold: tens of
// minutes on 2 cores; no deadline, progress is printed every 30 s; `make
// test` builds them before the tests start). $MIZZEN_ISTIO_BIN_DIR overrides
// the build with a directory of prebuilt binaries. A failed build fails the
// test — it never skips — with the build output.
func IstioBinary(t testing.TB, name string) string {
	t.Helper()
	known := false
	for _, n := range IstioBinaryNames {
		known = known || n == name
	}
	if !known {
		t.Fatalf("rig: IstioBinary(%q): not one of %v", name, IstioBinaryNames)
	}
	if d := os.Getenv("MIZZEN_ISTIO_BIN_DIR"); d != "" {
		p := filepath.Join(d, name)
		if !isExecutable(p) {
			t.Fatalf("rig: MIZZEN_ISTIO_BIN_DIR=%s: no executable %s", d, name)
		}
		return p
	}
	istioBinOnce.Do(func() {
		istioBinDir, istioBinErr = BuildIstio(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "rig: "+format+"\n", args...)
		})
	})
	if istioBinErr != nil {
		t.Fatalf("rig: cannot get Istio's binaries (module %s): %v", istioModuleDir, istioBinErr)
	}
	return filepath.Join(istioBinDir, name)
}

// BuildIstio builds (or finds cached) pilot-agent, istioctl and
// pilot-discovery outside a test and returns the directory holding them, so
// `make test` pays the cold build before the e2e timeouts start.
func BuildIstio(logf func(string, ...any)) (dir string, err error) {
	src, err := istioModuleSource()
	if err != nil {
		return "", err
	}
	ldflags := "-s -w"
	if v, err := os.ReadFile(filepath.Join(src, "VERSION")); err == nil && strings.TrimSpace(string(v)) != "" {
		ldflags += " -X istio.io/istio/pkg/version.buildVersion=" + strings.TrimSpace(string(v)) + "-dev"
	}
	return goTool{name: "istio", moduleDir: istioModuleDir, recipe: istioBuildRecipe,
		coldNote: "tens of minutes on 2 cores", pkgs: istioPkgs, ldflags: ldflags}.build(logf)
}

// IstioModuleDir returns the directory of the istio.io/istio module source
// pinned by e2e/istio, in the Go module cache (downloaded first if needed), so
// tests read Istio's files at test time: tools/packaging/common/
// envoy_bootstrap.json, the injection templates and chart values under
// manifests/. The directory is read-only.
func IstioModuleDir(t testing.TB) string {
	t.Helper()
	d, err := istioModuleSource()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	return d
}

func istioModuleSource() (string, error) {
	istioSrcOnce.Do(func() { istioSrcDir, istioSrcErr = moduleSourceDir(istioModuleDir, istioModulePath) })
	return istioSrcDir, istioSrcErr
}

// moduleSourceDir runs `go mod download` + `go list -m` in the tool module
// moduleDir (relative to the main module's root) for the directory of module
// modPath's source in the module cache.
func moduleSourceDir(moduleDir, modPath string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, moduleDir)
	run := func(args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return "", fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, tail(string(ee.Stderr), 30))
			}
			return "", fmt.Errorf("go %s in %s: %v", strings.Join(args, " "), dir, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	d, err := run("list", "-m", "-f", "{{.Dir}}", modPath)
	if err != nil {
		return "", err
	}
	if d == "" { // not downloaded yet
		if _, err := run("mod", "download", modPath); err != nil {
			return "", err
		}
		if d, err = run("list", "-m", "-f", "{{.Dir}}", modPath); err != nil {
			return "", err
		}
	}
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return "", fmt.Errorf("module %s: source directory %q not found (go list -m in %s)", modPath, d, dir)
	}
	return d, nil
}

// GatewayAPIModuleDir is the source of sigs.k8s.io/gateway-api at the version
// the e2e/istio module pins (Istio's own), in the Go module cache: its
// config/crd holds the Gateway API CRDs, for tests that apply Gateway API
// objects to the real apiserver.
func GatewayAPIModuleDir(t testing.TB) string {
	t.Helper()
	d, err := moduleSourceDir(istioModuleDir, "sigs.k8s.io/gateway-api")
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	return d
}
