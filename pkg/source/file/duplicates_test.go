package file

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// edgeRoute is VirtualService shop/reviews-edge routing to host dest, so a
// test can tell which definition is served.
func edgeRoute(dest string) string {
	return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews-edge, namespace: shop}\n" +
		"spec:\n  hosts: [reviews.example.com]\n  gateways: [edge]\n  http:\n  - route:\n    - destination: {host: " + dest + "}\n"
}

// servedDest is the destination of shop/reviews-edge in in, or "" without it
// ("many" if it is there more than once).
func servedDest(in model.Inputs) string {
	got := ""
	for _, vs := range in.VirtualServices {
		if vs.Namespace == "shop" && vs.Name == "reviews-edge" {
			if got != "" {
				return "many"
			}
			got = vs.Spec.GetHttp()[0].GetRoute()[0].GetDestination().GetHost()
		}
	}
	return got
}

func (r *running) waitDest(t *testing.T, want string) model.Inputs {
	t.Helper()
	deadline := time.After(waitLimit)
	last := "(no update)"
	for {
		select {
		case in := <-r.updates:
			if last = servedDest(in); last == want {
				return in
			}
		case <-deadline:
			t.Fatalf("timed out waiting for reviews-edge to route to %q; last update: %q", want, last)
		}
	}
}

func setModTime(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// A new file that sorts first and redefines an object another file serves
// does not take it over: it is reported and skipped, and edits of the
// original keep flowing. Only once the original is gone is the duplicate
// served.
func TestRunDuplicateInNewFileDoesNotTakeOver(t *testing.T) {
	dir := t.TempDir()
	orig := writeFile(t, dir, "shop/reviews.yaml", edgeRoute("reviews-v1"))
	r := run(t, dir, true)

	intruder := writeFile(t, dir, "0.yaml", edgeRoute("intruder")+"---\n"+serviceAccounts("marker"))
	in := r.waitFor(t, "marker") // 0.yaml was read
	if got := servedDest(in); got != "reviews-v1" {
		t.Errorf("after the duplicate appeared, reviews-edge routes to %q, want reviews-v1", got)
	}
	e := r.waitError(t, "duplicate")
	if e.File != intruder || e.Code != CodeDuplicate || e.Kind != "VirtualService" || e.Namespace != "shop" || e.Name != "reviews-edge" ||
		!strings.Contains(e.Error(), "already defined in "+orig+" doc 1 (line 1)") {
		t.Errorf("duplicate error = %q (%+v); want it on %s naming %s", e, e, intruder, orig)
	}
	if ce := e.ConfigError(); ce.Kind != "VirtualService" || ce.Code != CodeDuplicate || ce.Field != intruder+" doc 1 (line 1)" {
		t.Errorf("as a config error: %+v", ce)
	}

	// Edits of the original are served, and the duplicate is not reported
	// again although the original's lines moved.
	writeFile(t, dir, "shop/reviews.yaml", "# moved down\n\n"+edgeRoute("reviews-v2"))
	r.waitDest(t, "reviews-v2")
	writeFile(t, dir, "shop/reviews.yaml", edgeRoute("reviews-v3"))
	r.waitDest(t, "reviews-v3")
	select {
	case e := <-r.errs:
		t.Errorf("reported again: %v", e)
	default:
	}
	if errs := r.src.Errors(); len(errs) != 1 || errs[0].File != intruder {
		t.Errorf("Errors() = %v, want the one duplicate in 0.yaml", errs)
	}

	// The original gone, the other definition is the only one: served.
	if err := os.Remove(orig); err != nil {
		t.Fatal(err)
	}
	r.waitDest(t, "intruder")
	if errs := r.src.Errors(); len(errs) != 0 {
		t.Errorf("Errors() after the original was removed = %v", errs)
	}
	// Coming back, the original is the later one now.
	writeFile(t, dir, "shop/reviews.yaml", edgeRoute("reviews-v4"))
	e = r.waitError(t, "duplicate")
	if e.File != orig {
		t.Errorf("duplicate reported on %s, want the returning %s", e.File, orig)
	}
	if got := servedDest(mustLoadFrom(t, r.src)); got != "intruder" {
		t.Errorf("reviews-edge routes to %q, want intruder (there first now)", got)
	}
}

func mustLoadFrom(t *testing.T, s *Source) model.Inputs {
	t.Helper()
	in, _ := s.Load()
	return in
}

// At start there is no memory of which came first: the oldest file (by
// modification time) wins, then the path, then the document order; the
// others are reported.
func TestDuplicatesAtStartOldestFileWins(t *testing.T) {
	dir := t.TempDir()
	newer := writeFile(t, dir, "0.yaml", edgeRoute("newer"))
	older := writeFile(t, dir, "z/older.yaml", edgeRoute("older")+"---\n"+edgeRoute("older-again"))
	now := time.Now()
	setModTime(t, newer, now)
	setModTime(t, older, now.Add(-time.Hour))

	in, errs := load(t, dir)
	if got := servedDest(in); got != "older" {
		t.Errorf("served %q, want older (the oldest file, its first document)", got)
	}
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want 2 duplicates", errs)
	}
	for i, want := range []string{newer + ": doc 1 (line 1)", older + ": doc 2 (line 11)"} {
		if !strings.HasPrefix(errs[i].Error(), want) || !strings.Contains(errs[i].Error(), "already defined in "+older+" doc 1 (line 1)") {
			t.Errorf("error %d = %v, want at %s naming %s doc 1", i, errs[i], want, older)
		}
	}

	// Same modification time: the path decides.
	setModTime(t, older, now)
	if in, _ := load(t, dir); servedDest(in) != "newer" {
		t.Errorf("with equal times served %q, want newer (0.yaml sorts first)", servedDest(in))
	}
}

// Two files appearing in one scan while the Source runs are ranked the same
// way, after every definition already served.
func TestDuplicatesAppearingTogether(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, Options{Logger: quietLogger()})
	if _, errs := s.Load(); len(errs) != 0 {
		t.Fatal(errs)
	}
	a := writeFile(t, dir, "a.yaml", edgeRoute("a"))
	b := writeFile(t, dir, "b.yaml", edgeRoute("b"))
	setModTime(t, a, time.Now())
	setModTime(t, b, time.Now().Add(-time.Minute))
	in, errs := s.Load()
	if servedDest(in) != "b" || len(errs) != 1 || errs[0].File != a {
		t.Errorf("served %q, errors %v; want b (older) served and a reported", servedDest(in), errs)
	}
	// Touching the served file later changes nothing: it was there first.
	writeFile(t, dir, "b.yaml", edgeRoute("b2"))
	if in, _ := s.Load(); servedDest(in) != "b2" {
		t.Errorf("served %q after editing b, want b2", servedDest(in))
	}
	if err := os.Rename(b, filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	// A rename is a removal and a new file: a.yaml was there before c.yaml.
	if in, errs := s.Load(); servedDest(in) != "a" || len(errs) != 1 || !strings.HasSuffix(errs[0].File, "c.yaml") {
		t.Errorf("after renaming b.yaml: served %q, errors %v; want a served, c.yaml reported", servedDest(in), errs)
	}
}
