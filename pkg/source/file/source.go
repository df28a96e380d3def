// Package file is the cluster-less config source: a directory of Kubernetes
// and Istio YAML, watched, decoded into the same model.Inputs the Kubernetes
// source produces.
//
// Files are the unit of consistency. A file in which any document fails to
// decode keeps contributing its last good version (nothing, if it never had
// one), so saving a half-edited file never tears down routes while the rest of
// the directory keeps flowing.
//
// An object defined twice (same kind, namespace and name) is served from the
// definition seen first; the later one is reported and skipped for as long as
// the first exists, so a new file cannot take over an object another file
// serves. Definitions found in the same scan (all of them, at start) are
// ranked by their file's modification time, oldest first, then by path, then
// by document order.
package file

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/debounce"
	"github.com/mizzenmesh/mizzen/pkg/source/decode"
)

const defaultDebounce = 10 * time.Millisecond

// Options configure a Source. The zero value is usable.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnError receives each config error as Run discovers it: every failed
	// parse of a changed file, and each duplicate when it first appears. When
	// nil, errors are logged instead. It is called from Run's goroutine.
	OnError func(*Error)
	// Debounce is the quiet period that ends a burst of file events; one save
	// produces several (create, write, chmod, rename). Defaults to 10ms.
	Debounce time.Duration
	// KeepOtherSecrets keeps the Secrets that cannot be gateway credentials
	// too, their values dropped (key names only), for `mizzen analyze`: a
	// Gateway naming one then learns that the Secret exists and which keys it
	// has, not "no TLS Secret". A server leaves it off: model.Inputs holds
	// credentials only.
	KeepOtherSecrets bool
}

// Source reads a directory tree of YAML/JSON config. It is safe for concurrent
// use, but Run must be called at most once at a time.
type Source struct {
	dir      string
	log      *slog.Logger
	onError  func(*Error)
	debounce time.Duration
	decode   decodeOptions
	// settle bounds how long a burst of events may postpone an update, and is
	// how long a file must stay empty before its objects are dropped.
	settle time.Duration

	mu     sync.Mutex
	files  map[string]*fileState
	loaded bool
	// rootErr is set while the directory itself cannot be read; the last good
	// state is kept meanwhile, since a remount is far likelier than a wish to
	// delete all config.
	rootErr *Error
	// reported holds the messages of the current duplicate, walk and
	// directory errors, so each is reported once while it lasts.
	reported map[string]bool
	errs     []*Error
	// unsettled is set when a file was found emptied too recently to trust.
	unsettled bool
	// claims counts the definitions ranked so far: a definition's rank is the
	// count when it was first seen, and the lowest rank of a key is served.
	claims uint64
}

type fileState struct {
	sum     [sha256.Size]byte // of the raw bytes: unchanged files are not re-parsed
	parsed  bool
	readErr bool
	good    []object
	hasGood bool
	goodFP  [sha256.Size]byte
	// errs are the errors of the latest attempt; non-empty means good is stale.
	errs []*Error
	// emptySince is when the file was first seen empty after having objects.
	emptySince time.Time
	// modTime is the file's modification time when it was last read: it
	// ranks definitions first seen in the same scan.
	modTime time.Time
	// rank holds, for each key good defines, when this file started to
	// define it (Source.claims); 0 until refresh ranks it.
	rank map[string]uint64
}

// New returns a Source for dir. Nothing is read until Load or Run.
func New(dir string, opts Options) *Source {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := opts.Debounce
	if d <= 0 {
		d = defaultDebounce
	}
	return &Source{
		dir:      dir,
		log:      log.With("source", "file", "dir", dir),
		onError:  opts.OnError,
		debounce: d,
		decode:   decodeOptions{keepOtherSecrets: opts.KeepOtherSecrets},
		settle:   max(10*d, 100*time.Millisecond),
		files:    map[string]*fileState{},
		reported: map[string]bool{},
	}
}

// Load reads the whole directory synchronously and returns the merged inputs
// with every current error. The objects returned are shared with later results
// and must be treated as immutable.
func (s *Source) Load() (model.Inputs, []*Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, _, _ := s.refresh(nil)
	s.loaded = true
	return in, slices.Clone(s.errs)
}

// Errors returns the errors of the current state: files that failed to parse
// (and so still contribute their previous version), duplicates, and an
// unreadable directory.
func (s *Source) Errors() []*Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// Run watches the directory and calls onChange with the full merged inputs
// after every change that alters them or the current errors (Errors), so a
// caller showing those errors with its config sees them change too. If Load
// was not called first, onChange also receives the initial state. Changes
// made between Load and Run are picked up, because Run rescans once its
// watches are in place. It returns nil when ctx is done, or an error if
// watching cannot start.
func (s *Source) Run(ctx context.Context, onChange func(model.Inputs)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", s.dir, err)
	}
	defer w.Close()
	// fsnotify is not recursive, so every directory found is watched, on each
	// rescan: a directory deleted and recreated under the same name needs a new
	// watch, and adding an existing one is harmless.
	watch := func(dir string) {
		if err := w.Add(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cannot watch directory", "path", dir, "err", err)
		}
	}
	if err := w.Add(s.dir); err != nil {
		return fmt.Errorf("watching %s: %w", s.dir, err)
	}

	burst := debounce.New(s.debounce, s.settle)
	defer burst.Stop()
	recheck := time.NewTimer(time.Hour)
	recheck.Stop()
	defer recheck.Stop()
	update := func() {
		s.mu.Lock()
		before := errorKeys(s.errs)
		in, fresh, changed := s.refresh(watch)
		errsChanged := !maps.Equal(before, errorKeys(s.errs))
		initial := !s.loaded
		s.loaded = true
		unsettled := s.unsettled
		s.mu.Unlock()
		s.report(fresh)
		if changed || initial || errsChanged {
			onChange(in)
		}
		if unsettled {
			recheck.Reset(s.settle)
		}
	}
	update()

	// While the directory itself is gone its watch is gone too; polling is
	// the only way to notice it come back.
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			burst.Add()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// Most likely an event-queue overflow: events were lost, and a
			// rescan recovers whatever they were.
			s.log.Warn("file watch error", "err", err)
			burst.Add()
		case <-poll.C:
			s.mu.Lock()
			missing := s.rootErr != nil
			s.mu.Unlock()
			if missing {
				burst.Add()
			}
		case <-recheck.C:
			burst.Add()
		case <-burst.C():
			burst.Fired()
			update()
		}
	}
}

func errorKeys(errs []*Error) map[string]bool {
	m := make(map[string]bool, len(errs))
	for _, e := range errs {
		m[e.reportKey()] = true
	}
	return m
}

func (s *Source) report(errs []*Error) {
	for _, e := range errs {
		if s.onError != nil {
			s.onError(e)
		} else {
			s.log.Warn("config error", "err", e.Error())
		}
	}
}

// refresh rescans the directory, re-parsing files whose bytes changed, and
// returns the merged inputs, the errors not reported before, and whether the
// inputs changed. watchDir, if set, is called for each directory before its
// entries are read, so no file created afterwards can go unnoticed.
func (s *Source) refresh(watchDir func(string)) (model.Inputs, []*Error, bool) {
	var fresh []*Error
	changed := false
	s.unsettled = false

	paths, walkErrs, rootErr := s.walk(watchDir)
	if rootErr != nil {
		s.rootErr = &Error{File: s.dir, Err: rootErr}
	} else {
		s.rootErr = nil
		present := make(map[string]bool, len(paths))
		for _, p := range paths {
			present[p] = true
			c, errs := s.refreshFile(p)
			changed = changed || c
			fresh = append(fresh, errs...)
		}
		for p, st := range s.files {
			if !present[p] {
				changed = changed || len(st.good) > 0
				delete(s.files, p)
			}
		}
		s.rankNewDefinitions()
	}

	in, dups := s.merge()

	// These errors are found afresh on every rescan; they are reported when
	// they appear, not again on each unrelated change.
	var recomputed []*Error
	if s.rootErr != nil {
		recomputed = append(recomputed, s.rootErr)
	}
	recomputed = append(recomputed, walkErrs...)
	recomputed = append(recomputed, dups...)
	seen := make(map[string]bool, len(recomputed))
	for _, e := range recomputed {
		msg := e.reportKey()
		seen[msg] = true
		if !s.reported[msg] {
			fresh = append(fresh, e)
		}
	}
	s.reported = seen

	s.errs = s.errs[:0:0]
	if s.rootErr != nil {
		s.errs = append(s.errs, s.rootErr)
	}
	s.errs = append(s.errs, walkErrs...)
	for _, p := range slices.Sorted(maps.Keys(s.files)) {
		s.errs = append(s.errs, s.files[p].errs...)
	}
	s.errs = append(s.errs, dups...)
	return in, fresh, changed
}

// walk lists the config files under the directory in lexical order. Names
// starting with a dot are skipped: they are editor swap and lock files, VCS
// metadata, and the timestamped directories of a mounted ConfigMap (whose
// files are reached through the top-level symlinks instead).
func (s *Source) walk(watchDir func(string)) (paths []string, errs []*Error, rootErr error) {
	rootErr = filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.dir {
				return err
			}
			errs = append(errs, &Error{File: p, Err: err})
			return nil
		}
		if p != s.dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if watchDir != nil {
				watchDir(p)
			}
			return nil
		}
		if !isConfigFile(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Symlinked directories are not followed (they could loop), but
			// symlinked files are read: a ConfigMap mount is made of them.
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		paths = append(paths, p)
		return nil
	})
	return paths, errs, rootErr
}

func isConfigFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// refreshFile re-reads one file and reports whether its contribution changed.
func (s *Source) refreshFile(p string) (bool, []*Error) {
	st := s.files[p]
	if st == nil {
		st = &fileState{}
		s.files[p] = st
	}
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Gone between listing and reading; the next event rescans.
			delete(s.files, p)
			return len(st.good) > 0, nil
		}
		e := &Error{File: p, Err: err}
		repeat := st.readErr && len(st.errs) == 1 && st.errs[0].Error() == e.Error()
		st.readErr, st.errs = true, []*Error{e}
		if repeat {
			return false, nil
		}
		return false, st.errs
	}
	// Saving in place truncates before it writes, so a file read in between
	// looks deliberately emptied. Only an emptiness that lasts is believed.
	if len(data) == 0 && len(st.good) > 0 {
		now := time.Now()
		if st.emptySince.IsZero() {
			st.emptySince = now
		}
		if now.Sub(st.emptySince) < s.settle {
			s.unsettled = true
			return false, nil
		}
	} else {
		st.emptySince = time.Time{}
	}
	sum := sha256.Sum256(data)
	if st.parsed && !st.readErr && st.sum == sum {
		return false, nil
	}
	st.sum, st.parsed, st.readErr = sum, true, false
	res := parseFile(p, data, s.log, s.decode)
	if len(res.errs) > 0 {
		st.errs = res.errs
		return false, res.errs
	}
	st.errs = nil
	if st.hasGood && st.goodFP == res.fingerprint {
		return false, nil
	}
	// A key this file went on defining keeps its rank; a new one is ranked
	// by refresh, once every file of the scan has been read.
	rank := make(map[string]uint64, len(res.objects))
	for _, o := range res.objects {
		rank[o.key()] = st.rank[o.key()]
	}
	if fi, err := os.Stat(p); err == nil {
		st.modTime = fi.ModTime()
	}
	st.good, st.goodFP, st.hasGood, st.rank = res.objects, res.fingerprint, true, rank
	return true, nil
}

// rankNewDefinitions ranks the definitions first seen in this scan after all
// earlier ones, among themselves by file modification time (oldest first),
// then path, then document.
func (s *Source) rankNewDefinitions() {
	var paths []string
	for p, st := range s.files {
		for _, r := range st.rank {
			if r == 0 {
				paths = append(paths, p)
				break
			}
		}
	}
	slices.SortFunc(paths, func(a, b string) int {
		return cmp.Or(s.files[a].modTime.Compare(s.files[b].modTime), cmp.Compare(a, b))
	})
	for _, p := range paths {
		st := s.files[p]
		for _, o := range st.good {
			if k := o.key(); st.rank[k] == 0 {
				s.claims++
				st.rank[k] = s.claims
			}
		}
	}
}

// merge builds the inputs from every file's good state, in file path then
// document order, so the output is deterministic. Of the definitions of one
// key only the one ranked first is used; the others are reported.
func (s *Source) merge() (model.Inputs, []*Error) {
	type def struct {
		file string
		obj  *object
	}
	served := map[string]def{}
	for _, p := range slices.Sorted(maps.Keys(s.files)) {
		st := s.files[p]
		for i := range st.good {
			o := &st.good[i]
			k := o.key()
			first, ok := served[k]
			if !ok || st.rank[k] < s.files[first.file].rank[k] {
				served[k] = def{p, o}
			}
		}
	}
	var (
		in   model.Inputs
		dups []*Error
	)
	for _, p := range slices.Sorted(maps.Keys(s.files)) {
		for i := range s.files[p].good {
			o := &s.files[p].good[i]
			first := served[o.key()]
			if first.obj == o {
				decode.Append(&in, o.Value)
				continue
			}
			dups = append(dups, &Error{
				File: p, Doc: o.doc, Line: o.line,
				Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Code: CodeDuplicate,
				Err: fmt.Errorf("duplicate: already defined in %s doc %d (line %d), which was there first and is the one served; this definition is skipped",
					first.file, first.obj.doc, first.obj.line),
				// Reported once while it lasts, even as edits move the first
				// definition's line.
				key: strings.Join([]string{CodeDuplicate, p, strconv.Itoa(o.doc), o.key(), first.file}, "\x00"),
			})
		}
	}
	slices.SortStableFunc(dups, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Doc, b.Doc))
	})
	return in, dups
}
