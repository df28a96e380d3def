package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

const waitLimit = 5 * time.Second

type running struct {
	src     *Source
	updates chan model.Inputs
	errs    chan *Error
}

// run starts Run on dir and stops it when the test ends. If load is set, Load
// is called first, as mizzen serve does.
func run(t *testing.T, dir string, load bool) *running {
	t.Helper()
	r := &running{updates: make(chan model.Inputs, 100), errs: make(chan *Error, 100)}
	r.src = New(dir, Options{Logger: quietLogger(), OnError: func(e *Error) { r.errs <- e }})
	if load {
		if _, errs := r.src.Load(); len(errs) > 0 {
			t.Fatalf("Load: %v", errs)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.src.Run(ctx, func(in model.Inputs) { r.updates <- in }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return after cancel")
		}
	})
	return r
}

// waitFor returns the first update whose ServiceAccount names are want.
func (r *running) waitFor(t *testing.T, want string) model.Inputs {
	t.Helper()
	deadline := time.After(waitLimit)
	last := "(no update)"
	for {
		select {
		case in := <-r.updates:
			if last = names(in); last == want {
				return in
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q; last update: %q", want, last)
		}
	}
}

func (r *running) waitError(t *testing.T, substr string) *Error {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case e := <-r.errs:
			if strings.Contains(e.Error(), substr) {
				return e
			}
		case <-deadline:
			t.Fatalf("timed out waiting for an error containing %q", substr)
		}
	}
}

func serviceAccounts(names ...string) string {
	var docs []string
	for _, n := range names {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n", n))
	}
	return strings.Join(docs, "---\n")
}

func TestRunDeliversInitialStateAndEdits(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceAccounts("a1"))
	r := run(t, dir, false)
	r.waitFor(t, "a1")

	writeFile(t, dir, "a.yaml", serviceAccounts("a1", "a2"))
	r.waitFor(t, "a1 a2")
}

func TestRunBrokenFileKeepsLastGoodVersionWhileOthersFlow(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceAccounts("a1", "a2"))
	writeFile(t, dir, "b.yaml", serviceAccounts("b1"))
	r := run(t, dir, true)

	writeFile(t, dir, "a.yaml", serviceAccounts("a1")+"---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: [\n")
	e := r.waitError(t, "a.yaml: doc 2 (line 6)")
	if e.Kind != "" || e.Doc != 2 {
		t.Errorf("error = %#v", e)
	}

	writeFile(t, dir, "b.yaml", serviceAccounts("b1", "b2"))
	r.waitFor(t, "a1 a2 b1 b2")

	writeFile(t, dir, "a.yaml", serviceAccounts("a3"))
	r.waitFor(t, "a3 b1 b2")
	if errs := r.src.Errors(); len(errs) != 0 {
		t.Errorf("errors after the fix: %v", errs)
	}
}

func TestRunFileRemoved(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceAccounts("a"))
	b := writeFile(t, dir, "b.yaml", serviceAccounts("b"))
	r := run(t, dir, true)
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a")
}

func TestRunFilesInNewDirectories(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, true)
	writeFile(t, dir, "x/a.yaml", serviceAccounts("a"))
	r.waitFor(t, "a")
	// Created and filled at once, before any watch on them can exist.
	writeFile(t, dir, "x/y/z/b.yml", serviceAccounts("b"))
	r.waitFor(t, "a b")
	// And the new directories are watched from then on.
	writeFile(t, dir, "x/y/z/b.yml", serviceAccounts("b2"))
	r.waitFor(t, "a b2")

	if err := os.RemoveAll(filepath.Join(dir, "x", "y")); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a")
	writeFile(t, dir, "x/y/c.json", `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "c"}}`)
	r.waitFor(t, "a c")
}

// Editors and kubectl-like tools save by writing a temporary file and renaming
// it over the original.
func TestRunAtomicRenameSave(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", serviceAccounts("a1"))
	r := run(t, dir, true)
	for i, tmp := range []string{".a.yaml.swp", "a.yaml.tmp"} {
		want := fmt.Sprintf("a%d", i+2)
		p := writeFile(t, dir, tmp, serviceAccounts(want))
		if err := os.Rename(p, a); err != nil {
			t.Fatal(err)
		}
		r.waitFor(t, want)
	}
	// A rename out of the directory is a removal.
	if err := os.Rename(a, filepath.Join(t.TempDir(), "moved.yaml")); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "")
}

// Changes between Load and Run must not be lost, and Run must not repeat what
// Load already returned.
func TestRunAfterLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceAccounts("a1"))
	r := &running{updates: make(chan model.Inputs, 100), errs: make(chan *Error, 100)}
	src := New(dir, Options{Logger: quietLogger()})
	if in, _ := src.Load(); names(in) != "a1" {
		t.Fatalf("Load: %s", names(in))
	}
	writeFile(t, dir, "a.yaml", serviceAccounts("a2"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(in model.Inputs) { r.updates <- in }) }()
	r.waitFor(t, "a2")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
	if len(r.updates) != 0 {
		t.Errorf("%d extra updates", len(r.updates))
	}
}

func TestRunReportsDuplicateOnce(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceAccounts("web"))
	r := run(t, dir, true)
	writeFile(t, dir, "b.yaml", serviceAccounts("web", "b"))
	r.waitFor(t, "web b")
	e := r.waitError(t, "duplicate")
	if !strings.HasSuffix(e.File, "b.yaml") || !strings.Contains(e.Error(), "a.yaml") {
		t.Errorf("duplicate error = %v", e)
	}
	writeFile(t, dir, "c.yaml", serviceAccounts("c"))
	r.waitFor(t, "web b c")
	select {
	case e := <-r.errs:
		t.Errorf("reported again: %v", e)
	default:
	}
}

func TestRunMissingDirectory(t *testing.T) {
	err := New(filepath.Join(t.TempDir(), "nope"), Options{Logger: quietLogger()}).Run(context.Background(), func(model.Inputs) {})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Run on a missing directory: %v", err)
	}
}

// An emptied file is believed only once it has stayed empty for a while, since
// saving in place passes through an empty file on its way to the new content.
func TestRunEmptiedFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceAccounts("a"))
	writeFile(t, dir, "b.yaml", serviceAccounts("b"))
	r := run(t, dir, true)
	writeFile(t, dir, "a.yaml", "")
	r.waitFor(t, "b")
	writeFile(t, dir, "a.yaml", serviceAccounts("a2"))
	r.waitFor(t, "a2 b")
}

// A directory that disappears (an unmount, a ConfigMap volume being swapped) is
// far likelier to come back than to mean "delete all config", so its last
// state is kept meanwhile.
func TestRunDirectoryReplaced(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "config")
	writeFile(t, dir, "a.yaml", serviceAccounts("a"))
	r := run(t, dir, false)
	r.waitFor(t, "a") // Run is watching

	if err := os.Rename(dir, filepath.Join(parent, "old")); err != nil {
		t.Fatal(err)
	}
	e := r.waitError(t, "no such file or directory")
	if e.File != dir {
		t.Errorf("error = %v", e)
	}
	if got := r.src.Errors(); len(got) != 1 {
		t.Errorf("Errors() = %v", got)
	}
	// The error is news (an update carries it to whoever shows errors), the
	// config is not: the last state is kept.
	for len(r.updates) > 0 {
		if in := <-r.updates; names(in) != "a" {
			t.Errorf("update while the directory is gone: %q, want the last state %q", names(in), "a")
		}
	}

	writeFile(t, parent, "new/b.yaml", serviceAccounts("b"))
	if err := os.Rename(filepath.Join(parent, "new"), dir); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "b")
	writeFile(t, dir, "c.yaml", serviceAccounts("c"))
	r.waitFor(t, "b c")
}
