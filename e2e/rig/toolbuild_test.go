package rig

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeModule writes a tiny tool module (stdlib only): a root main package and
// two more under cmd/.
func fakeModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/faketool\n\ngo 1.21\n",
		"go.sum":            "",
		"main.go":           "package main\n\nfunc main() { println(\"root\") }\n",
		"cmd/one/main.go":   "package main\n\nfunc main() { println(\"one\") }\n",
		"cmd/two/main.go":   "package main\n\nfunc main() { println(\"two\") }\n",
		"internal/x/x.go":   "package x\n\nconst X = 1\n",
		"cmd/bad/main.go":   "package main\n\nfunc main() { undefined() }\n",
		"cmd/three/main.go": "package main\n\nimport \"example.com/faketool/internal/x\"\n\nfunc main() { println(x.X) }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type logRec struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRec) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logRec) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func runOut(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestGoToolSingleBinaryCached(t *testing.T) {
	mod, cache := fakeModule(t), t.TempDir()
	g := goTool{name: "fake", recipe: "test v1", coldNote: "instant"}
	var log logRec
	bin, err := g.buildIn(mod, cache, log.logf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(bin), "fake-") || runOut(t, bin) != "root" {
		t.Fatalf("built %s", bin)
	}
	if b, err := os.ReadFile(bin + ".log"); err != nil || !strings.Contains(string(b), "example.com/faketool") {
		t.Errorf("log %s.log: %v %q (want go build -v's package lines)", bin, err, b)
	}
	again, err := g.buildIn(mod, cache, log.logf)
	if err != nil || again != bin {
		t.Fatalf("second build: %s, %v; want the cached %s", again, err, bin)
	}
	if n := log.count("building "); n != 1 {
		t.Errorf("built %d times, want 1: %q", n, log.lines)
	}
	// A change to a Go file is a new hash.
	if err := os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() { println(\"root2\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := g.buildIn(mod, cache, log.logf)
	if err != nil || changed == bin || runOut(t, changed) != "root2" {
		t.Fatalf("after a change: %s, %v (was %s)", changed, err, bin)
	}
}

func TestGoToolSeveralBinariesOneBuild(t *testing.T) {
	mod, cache := fakeModule(t), t.TempDir()
	g := goTool{name: "multi", recipe: "test v1", coldNote: "instant", ldflags: "-s -w -X main.unused=1",
		pkgs: []string{"example.com/faketool/cmd/one", "example.com/faketool/cmd/two", "example.com/faketool/cmd/three"}}
	var log logRec
	dir, err := g.buildIn(mod, cache, log.logf)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"one": "one", "two": "two", "three": "1"} {
		if got := runOut(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s printed %q, want %q", name, got, want)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("cache dir %s: %v %v, want 0755", dir, st.Mode(), err)
	}
	if again, err := g.buildIn(mod, cache, log.logf); err != nil || again != dir {
		t.Fatalf("second build: %s, %v; want the cached %s", again, err, dir)
	}
	// A binary missing from the entry (deleted by hand) is rebuilt.
	if err := os.Remove(filepath.Join(dir, "two")); err != nil {
		t.Fatal(err)
	}
	if again, err := g.buildIn(mod, cache, log.logf); err != nil || again != dir || runOut(t, filepath.Join(dir, "two")) != "two" {
		t.Fatalf("rebuild: %s, %v", again, err)
	}
	if n := log.count("building "); n != 2 {
		t.Errorf("built %d times, want 2: %q", n, log.lines)
	}
	// No temp files or directories are left behind.
	left, _ := filepath.Glob(filepath.Join(cache, ".*.tmp"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestGoToolFailureHasOutput(t *testing.T) {
	mod, cache := fakeModule(t), t.TempDir()
	g := goTool{name: "bad", recipe: "test v1", coldNote: "instant",
		pkgs: []string{"example.com/faketool/cmd/one", "example.com/faketool/cmd/bad"}}
	_, err := g.buildIn(mod, cache, (&logRec{}).logf)
	if err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("err = %v, want the compiler's error", err)
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("failed build left %s in the cache", e.Name())
		}
	}
}

// Concurrent builders of one hash: one builds, the others wait for its lock
// (announcing it) and then find the result in place.
func TestGoToolOneBuilderPerHash(t *testing.T) {
	mod, cache := fakeModule(t), t.TempDir()
	g := goTool{name: "race", recipe: "test v1", coldNote: "instant",
		pkgs: []string{"example.com/faketool/cmd/one", "example.com/faketool/cmd/two"}}
	var log logRec
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, err := g.buildIn(mod, cache, log.logf)
			if err != nil {
				t.Error(err)
			}
			results[i] = dir
		}()
	}
	wg.Wait()
	for _, r := range results[1:] {
		if r != results[0] {
			t.Errorf("results differ: %q", results)
		}
	}
	if n := log.count("building "); n != 1 {
		t.Errorf("built %d times, want 1: %q", n, log.lines)
	}
}

func TestRunWithProgress(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "build.log")
	cmd := exec.Command("sh", "-c", `echo "go: downloading example.com/m v1.0.0"; echo example.com/m/a; echo example.com/m/b
sleep 0.5; echo "# example.com/m/c"; echo "c.go:1:1: undefined: x" >&2; echo example.com/m/d; sleep 0.5`)
	var ticks atomic.Int32
	var last atomic.Int32
	out, err := runWithProgress(cmd, logPath, 100*time.Millisecond, func(n int) {
		ticks.Add(1)
		last.Store(int32(n))
	})
	if err != nil {
		t.Fatal(err)
	}
	if ticks.Load() < 3 {
		t.Errorf("progress called %d times in ~1 s at 100 ms", ticks.Load())
	}
	if last.Load() != 3 {
		t.Errorf("last progress: %d packages, want 3 (a, b, d)", last.Load())
	}
	if !strings.Contains(out, "undefined: x") || !strings.Contains(out, "downloading") {
		t.Errorf("output lacks stderr/notes: %q", out)
	}
	if n := countLogPackages(logPath); n != 3 {
		t.Errorf("countLogPackages = %d, want 3", n)
	}
	if n := countLogPackages(logPath + ".missing"); n != -1 || compiledNote(n) != "no log yet" {
		t.Errorf("missing log: %d %q", n, compiledNote(n))
	}
}

// Waiting for a tool build's lock has no deadline and reports progress.
func TestLockFileProgressWaits(t *testing.T) {
	old := progressEvery
	progressEvery = 50 * time.Millisecond
	defer func() { progressEvery = old }()
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFileProgress(path, 0, func() { t.Error("first lock waited") }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var waiting, still atomic.Int32
	done := make(chan error, 1)
	go func() {
		u, err := lockFileProgress(path, 0, func() { waiting.Add(1) }, func() { still.Add(1) })
		if err == nil {
			u()
		}
		done <- err
	}()
	time.Sleep(1200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("took a held lock: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if waiting.Load() != 1 || still.Load() < 2 {
		t.Errorf("waiting %d (want 1), still %d (want several)", waiting.Load(), still.Load())
	}
	// lockFile (other rig locks) keeps its deadline.
	unlock, _ = lockFile(path, time.Second, func() {})
	defer unlock()
	if _, err := lockFile(path, 600*time.Millisecond, func() {}); err == nil || !strings.Contains(err.Error(), "still locked") {
		t.Errorf("lockFile with a limit: %v", err)
	}
}
