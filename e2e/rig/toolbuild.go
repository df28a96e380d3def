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
	"syscall"
	"time"
)

// goTool is a test-only binary built from its own Go module under e2e/ (the
// kube-apiserver, kubectl), so the product's go.mod stays lean. It is built
// once per content hash into a cache directory shared by every test binary
// and run:
//
//	$MIZZEN_E2E_CACHE, else $XDG_CACHE_HOME/mizzen-e2e, else ~/.cache/mizzen-e2e
//	  <name>-<hash>        the binary
//	  <name>-<hash>.lock   flock(2) held while building
//	  <name>-<hash>.log    output of the last build
//
// <hash> covers the module's go.mod, go.sum and *.go files, the Go toolchain
// and target, and recipe, so a change to any of them builds a new binary.
type goTool struct {
	name      string // binary name in the cache, e.g. kube-apiserver
	moduleDir string // relative to the main module's root
	recipe    string // bump to force a rebuild when the build command changes
	limit     time.Duration
	coldNote  string // how long a cold build takes, for the log
}

// build returns the cached binary, building it first if needed. One builder
// at a time per hash, across test binaries and processes; the others wait for
// it and then find the binary in place.
func (g goTool) build(logf func(string, ...any)) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join(root, g.moduleDir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is not on PATH: %v", err)
	}
	hash, err := moduleHash(goBin, modDir, g.recipe)
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
	bin := filepath.Join(cacheDir, g.name+"-"+hash)
	if isExecutable(bin) {
		return bin, nil
	}
	unlock, err := lockFile(bin+".lock", g.limit+time.Minute, func() {
		logf("waiting for another process building %s (%s.lock)", g.name, bin)
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) {
		return bin, nil
	}
	tmp, err := os.CreateTemp(cacheDir, "."+g.name+"-"+hash+"-*.tmp")
	if err != nil {
		return "", err
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath) // a no-op after the rename

	logPath := bin + ".log"
	logf("building %s from %s into %s (cold: %s; log %s)", g.name, modDir, bin, g.coldNote, logPath)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), g.limit)
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
			err = fmt.Errorf("timed out after %v", g.limit)
		}
		return "", fmt.Errorf("go build in %s failed: %v\n%s", modDir, err, tail(string(out), 60))
	}
	if err := os.Chmod(tmpPath, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmpPath, bin); err != nil {
		return "", err
	}
	logf("built %s in %s", g.name, time.Since(start).Round(time.Second))
	return bin, nil
}

// APIServerCacheDir is where the built test tools are kept.
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
