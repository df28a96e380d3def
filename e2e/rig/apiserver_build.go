package rig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

// The test-only kube-apiserver (+ embedded etcd) lives in its own Go module,
// e2e/apiserver, so the product's go.mod stays lean. It is built once per content
// hash into a cache directory shared by every test binary and every run:
//
//	$MIZZEN_E2E_CACHE, else $XDG_CACHE_HOME/mizzen-e2e, else ~/.cache/mizzen-e2e
//	  kube-apiserver-<hash>        the binary
//	  kube-apiserver-<hash>.lock   flock(2) held while building
//	  kube-apiserver-<hash>.log    output of the last build
//
// <hash> covers e2e/apiserver's go.mod, go.sum and *.go files, the Go version
// and apiserverBuildRecipe, so a change to any of them builds a new binary.
const (
	apiserverModuleDir   = "e2e/apiserver"
	apiserverBuildRecipe = "go build -ldflags=-s -w v1"
	apiserverBuildLimit  = 20 * time.Minute
)

var (
	apiserverBinOnce sync.Once
	apiserverBin     string
	apiserverBinErr  error
)

// APIServerBinary returns the path of the cached test kube-apiserver binary,
// building it first if needed (cold: several minutes on 2 cores; bounded by 20
// minutes). $MIZZEN_APISERVER_BIN overrides it with a prebuilt binary. A failed
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

// APIServerCacheDir is where built kube-apiserver binaries are kept.
func APIServerCacheDir() (string, error) {
	if d := os.Getenv("MIZZEN_E2E_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir() // $XDG_CACHE_HOME or ~/.cache
	if err != nil {
		return "", fmt.Errorf("no cache directory (set MIZZEN_E2E_CACHE): %v", err)
	}
	return filepath.Join(d, "mizzen-e2e"), nil
}

func buildAPIServer(logf func(string, ...any)) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join(root, apiserverModuleDir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is not on PATH: %v", err)
	}
	hash, err := apiserverSourceHash(goBin, modDir)
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
	bin := filepath.Join(cacheDir, "kube-apiserver-"+hash)
	if isExecutable(bin) {
		return bin, nil
	}

	// One builder at a time per hash, across test binaries and processes; the
	// others wait for it and then find the binary in place.
	lockPath := bin + ".lock"
	unlock, err := lockFile(lockPath, apiserverBuildLimit+time.Minute, func() {
		logf("waiting for another process building the test kube-apiserver (%s)", lockPath)
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) {
		return bin, nil
	}

	tmp, err := os.CreateTemp(cacheDir, ".kube-apiserver-"+hash+"-*.tmp")
	if err != nil {
		return "", err
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath) // a no-op after the rename

	logPath := bin + ".log"
	logf("building the test kube-apiserver from %s into %s (cold: several minutes; log %s)", modDir, bin, logPath)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), apiserverBuildLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-ldflags=-s -w", "-o", tmpPath, ".")
	cmd.Dir = modDir
	// The nested module must not be pulled into a workspace; GOFLAGS (-mod=mod …),
	// GOPROXY and the rest of the environment are respected.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", apiserverBuildLimit)
		}
		return "", fmt.Errorf("go build in %s failed: %v\n%s", modDir, err, tail(string(out), 60))
	}
	if err := os.Chmod(tmpPath, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmpPath, bin); err != nil {
		return "", err
	}
	logf("built the test kube-apiserver in %s", time.Since(start).Round(time.Second))
	return bin, nil
}

// apiserverSourceHash hashes what determines the binary: the module's go.mod,
// go.sum and Go files, the Go toolchain and target, and the build recipe.
func apiserverSourceHash(goBin, modDir string) (string, error) {
	names := []string{"go.mod", "go.sum"}
	goFiles, err := filepath.Glob(filepath.Join(modDir, "*.go"))
	if err != nil {
		return "", err
	}
	for _, f := range goFiles {
		names = append(names, filepath.Base(f))
	}
	sort.Strings(names[2:])
	h := sha256.New()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(modDir, name))
		if err != nil {
			return "", fmt.Errorf("reading the apiserver module: %v", err)
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
	io.WriteString(h, apiserverBuildRecipe)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// lockFile takes an exclusive flock on path, polling up to limit; waiting is
// called once if the lock is held by someone else.
func lockFile(path string, limit time.Duration, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	announced := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s still locked after %v", path, limit)
		}
		if !announced {
			waiting()
			announced = true
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BuildAPIServer builds (or finds cached) the test kube-apiserver outside a test,
// so `make test` can pay the cold build before the e2e timeouts start.
func BuildAPIServer(logf func(string, ...any)) (string, error) { return buildAPIServer(logf) }
