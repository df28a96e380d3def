package loadclient

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Variant returns "a" for odd changes (1, 3, …) and "b" for even ones.
func Variant(change int) string {
	if change%2 == 1 {
		return "a"
	}
	return "b"
}

// FileToggler rewrites Path with A on odd changes and B on even ones.
type FileToggler struct {
	Path string
	A, B []byte
}

// NewFileToggler reads the two variant files.
func NewFileToggler(path, fileA, fileB string) (*FileToggler, error) {
	a, err := os.ReadFile(fileA)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fileB)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(a, b) {
		return nil, fmt.Errorf("%s and %s have the same content: a change would change nothing", fileA, fileB)
	}
	return &FileToggler{Path: path, A: a, B: b}, nil
}

// Trigger returns the trigger of change number k (1-based).
func (f *FileToggler) Trigger(k int) func(context.Context) error {
	data := f.B
	if Variant(k) == "a" {
		data = f.A
	}
	return func(context.Context) error { return WriteFileAtomic(f.Path, data) }
}

// WriteFileAtomic writes data to a temporary file in path's directory and
// renames it into place, so a watcher never sees a partial file. The temporary
// name starts with '.' and ends in .tmp so YAML directory watchers ignore it.
func WriteFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".xdsload-*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// CommandTrigger returns a trigger that runs cmd with `sh -c`, with
// XDSLOAD_CHANGE=<k> and XDSLOAD_VARIANT=<a|b> in its environment, so one
// command can toggle between two states (e.g. kubectl apply -f $XDSLOAD_VARIANT.yaml).
func CommandTrigger(cmd string, k int) func(context.Context) error {
	return func(ctx context.Context) error {
		c := exec.CommandContext(ctx, "sh", "-c", cmd)
		c.Env = append(os.Environ(), "XDSLOAD_CHANGE="+strconv.Itoa(k), "XDSLOAD_VARIANT="+Variant(k))
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%q: %w: %s", cmd, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
}
