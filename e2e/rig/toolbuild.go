package rig

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// goTool is a test-only binary (or set of binaries) built from its own Go
// module under e2e/ (the kube-apiserver, kubectl, Istio's pilot-agent …), so
// the product's go.mod stays lean. It is built once per content hash into a
// cache directory shared by every test binary and run:
//
//	$MIZZEN_E2E_CACHE, else $XDG_CACHE_HOME/mizzen-e2e, else ~/.cache/mizzen-e2e
//	  <name>-<hash>        the binary, or with pkgs a directory of binaries
//	  <name>-<hash>.lock   flock(2) held while building
//	  <name>-<hash>.log    output of the last build (`go build -v`, written as it goes)
//
// <hash> covers the module's go.mod, go.sum and *.go files, the Go toolchain
// and target, recipe, ldflags and pkgs, so a change to any of them builds anew.
//
// There is no deadline: a cold build on a busy 2-core machine is slow, not
// failed. Instead the builder prints "still building <name>: N packages
// compiled, <elapsed>" every progressEvery, and a process waiting for another
// one's build prints the same from the builder's log.
type goTool struct {
	name      string // name in the cache, e.g. kube-apiserver
	moduleDir string // relative to the main module's root
	recipe    string // bump to force a rebuild when the build command changes
	coldNote  string // how long a cold build takes, for the log
	// pkgs, if set, are main packages built in one `go build -o <dir>/`
	// (they share compile work); the cache entry is then a directory holding
	// one binary per package, named after the package's last path element.
	// Empty: the module's root package, built into one file.
	pkgs    []string
	ldflags string // default "-s -w"
}

// progressEvery is how often a running or awaited build reports progress.
var progressEvery = 30 * time.Second

// build returns the cached binary (or, with pkgs, the directory of binaries),
// building it first if needed. One builder at a time per hash, across test
// binaries and processes; the others wait for it and then find it in place.
func (g goTool) build(logf func(string, ...any)) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	cacheDir, err := APIServerCacheDir()
	if err != nil {
		return "", err
	}
	return g.buildIn(filepath.Join(root, g.moduleDir), cacheDir, logf)
}

func (g goTool) buildIn(modDir, cacheDir string, logf func(string, ...any)) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is not on PATH: %v", err)
	}
	ldflags := g.ldflags
	if ldflags == "" {
		ldflags = "-s -w"
	}
	recipe := g.recipe // as before pkgs and ldflags, so existing entries keep their hash
	if len(g.pkgs) > 0 || g.ldflags != "" {
		recipe += "\x00" + ldflags + "\x00" + strings.Join(g.pkgs, "\x00")
	}
	hash, err := moduleHash(goBin, modDir, recipe)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating cache dir: %v", err)
	}
	out := filepath.Join(cacheDir, g.name+"-"+hash)
	if g.complete(out) {
		return out, nil
	}
	logPath := out + ".log"
	start := time.Now()
	unlock, err := lockFileProgress(out+".lock", 0, func() {
		logf("waiting for another process building %s (%s.lock; log %s)", g.name, out, logPath)
	}, func() {
		logf("still waiting for another process building %s: %s, %s", g.name,
			compiledNote(countLogPackages(logPath)), time.Since(start).Round(time.Second))
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if g.complete(out) {
		return out, nil
	}
	// A partial entry (a directory missing a binary someone deleted) is
	// rebuilt; the lock is ours, so nobody is reading it.
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}

	var tmpPath, target string
	if len(g.pkgs) > 0 {
		tmpPath, err = os.MkdirTemp(cacheDir, "."+g.name+"-"+hash+"-*.tmp")
		if err != nil {
			return "", err
		}
		target = tmpPath + string(filepath.Separator) // go build -o dir/ pkgs...
	} else {
		tmp, err := os.CreateTemp(cacheDir, "."+g.name+"-"+hash+"-*.tmp")
		if err != nil {
			return "", err
		}
		tmpPath = tmp.Name()
		tmp.Close()
		target = tmpPath
	}
	defer os.RemoveAll(tmpPath) // a no-op after the rename

	logf("building %s from %s into %s (cold: %s; no deadline, progress every %v; log %s)",
		g.name, modDir, out, g.coldNote, progressEvery, logPath)
	pkgs := g.pkgs
	if len(pkgs) == 0 {
		pkgs = []string{"."}
	}
	args := append([]string{"build", "-v", "-ldflags=" + ldflags, "-o", target}, pkgs...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = modDir
	// The nested module must not be pulled into a workspace; GOFLAGS (-mod=mod …),
	// GOPROXY and the rest of the environment are respected.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	output, err := runWithProgress(cmd, logPath, progressEvery, func(n int) {
		logf("still building %s: %s, %s", g.name, compiledNote(n), time.Since(start).Round(time.Second))
	})
	if err != nil {
		return "", fmt.Errorf("go build in %s failed after %s: %v\n%s", modDir,
			time.Since(start).Round(time.Second), err, tail(output, 60))
	}
	if len(g.pkgs) == 0 {
		if err := os.Chmod(tmpPath, 0o755); err != nil {
			return "", err
		}
	} else {
		if err := os.Chmod(tmpPath, 0o755); err != nil { // MkdirTemp makes it 0700
			return "", err
		}
		for _, b := range g.binaries() {
			if !isExecutable(filepath.Join(tmpPath, b)) {
				return "", fmt.Errorf("go build in %s did not produce %s\n%s", modDir, b, tail(output, 60))
			}
		}
	}
	if err := os.Rename(tmpPath, out); err != nil {
		return "", err
	}
	logf("built %s in %s", g.name, time.Since(start).Round(time.Second))
	return out, nil
}

// binaries are the file names go build gives pkgs' binaries.
func (g goTool) binaries() []string {
	var names []string
	for _, p := range g.pkgs {
		names = append(names, path.Base(p))
	}
	return names
}

// complete reports whether out is a finished cache entry.
func (g goTool) complete(out string) bool {
	if len(g.pkgs) == 0 {
		return isExecutable(out)
	}
	for _, b := range g.binaries() {
		if !isExecutable(filepath.Join(out, b)) {
			return false
		}
	}
	return true
}

// runWithProgress runs cmd with stdout and stderr written to logPath as they
// come (so a process waiting on the lock can follow it) and kept for the
// error; every `every` it calls progress with the number of packages `go
// build -v` has reported compiled so far.
func runWithProgress(cmd *exec.Cmd, logPath string, every time.Duration, progress func(compiled int)) (string, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return "", err
	}

	var (
		mu       sync.Mutex
		compiled int
		output   bytes.Buffer
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			_, _ = logFile.WriteString(line + "\n")
			mu.Lock()
			output.WriteString(line + "\n")
			if isPackageLine(line) {
				compiled++
			}
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr) // a line beyond the buffer: keep the pipe drained
	}()
	waitErr := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		waitErr <- err
	}()

	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case err := <-waitErr:
			<-readDone
			mu.Lock()
			defer mu.Unlock()
			return output.String(), err
		case <-ticker.C:
			mu.Lock()
			n := compiled
			mu.Unlock()
			progress(n)
		}
	}
}

// isPackageLine reports whether a line of `go build -v` output is a package
// import path (one per package compiled), not a download note or an error.
func isPackageLine(line string) bool {
	if line == "" || strings.ContainsAny(line, " \t:") || strings.HasPrefix(line, "#") {
		return false
	}
	return true
}

// countLogPackages counts the packages a build log reports compiled so far.
func countLogPackages(logPath string) int {
	f, err := os.Open(logPath)
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if isPackageLine(sc.Text()) {
			n++
		}
	}
	return n
}

func compiledNote(n int) string {
	switch {
	case n < 0:
		return "no log yet"
	case n == 1:
		return "1 package compiled"
	default:
		return fmt.Sprintf("%d packages compiled", n)
	}
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
	return lockFileProgress(path, limit, waiting, nil)
}

// lockFileProgress is lockFile with limit 0 meaning no deadline (tool builds:
// the holder is a build, and a slow build is not a failed one; a holder that
// dies releases the lock with its file descriptors), and still, if set, called
// every progressEvery while waiting.
func lockFileProgress(path string, limit time.Duration, waiting, still func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	announced := false
	var next time.Time
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
		if limit > 0 && time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s still locked after %v", path, limit)
		}
		switch {
		case !announced:
			waiting()
			announced = true
			next = time.Now().Add(progressEvery)
		case still != nil && time.Now().After(next):
			still()
			next = time.Now().Add(progressEvery)
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
