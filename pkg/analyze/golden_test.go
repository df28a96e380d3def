package analyze

import (
	"bufio"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/file"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.txt from the current findings")

// Each testdata/<check>.in.yaml is analyzed as `mizzen analyze -f` would
// (a first line `# analyze: --discovery-selectors <sel>` passes that flag)
// and the text output compared with <check>.out.txt. Regenerate with
// `go test ./pkg/analyze -update` and review the diff like code.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			inputs, opts := load(t, in)
			findings, err := Analyze(inputs, opts)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, f := range findings {
				b.WriteString(f.String() + "\n")
			}
			if len(findings) == 0 {
				b.WriteString("✔ No problems found.\n")
			}
			got := b.String()
			out := strings.TrimSuffix(in, ".in.yaml") + ".out.txt"
			if *update {
				if err := os.WriteFile(out, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (go test ./pkg/analyze -update creates it)", err)
			}
			if got != string(want) {
				t.Errorf("findings differ from %s (-update rewrites it):\n--- want\n%s--- got\n%s", out, want, got)
			}
		})
	}
}

// load reads one YAML file the way `mizzen analyze -f` does, and its options.
func load(t *testing.T, path string) (*model.Inputs, Options) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var opts Options
	line, _ := bufio.NewReader(strings.NewReader(string(data))).ReadString('\n')
	if args, ok := strings.CutPrefix(strings.TrimSpace(line), "# analyze: --discovery-selectors "); ok {
		sel, err := metav1.ParseToLabelSelector(args)
		if err != nil {
			t.Fatal(err)
		}
		opts.DiscoverySelectors = append(opts.DiscoverySelectors, *sel)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	in, errs := file.New(dir, file.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), KeepOtherSecrets: true}).Load()
	for _, e := range errs {
		t.Fatalf("%s: %v", path, e)
	}
	return &in, opts
}

// Every check's finding ID is Istio's (IST) or mizzen's (MZ), with a hint.
func TestEveryFindingHasIDAndHint(t *testing.T) {
	ins, _ := filepath.Glob("testdata/*.in.yaml")
	ids := map[string]bool{}
	for _, in := range ins {
		inputs, opts := load(t, in)
		findings, err := Analyze(inputs, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range findings {
			if !(strings.HasPrefix(f.ID, "IST0") || strings.HasPrefix(f.ID, "MZ0")) || f.Hint == "" {
				t.Errorf("%s: finding without ID or hint: %+v", in, f)
			}
			ids[f.ID] = true
		}
	}
	for _, want := range []string{ReferencedResourceNotFound, SchemaValidationError, MisplacedAnnotation, UnknownAnnotation,
		ConflictingMeshGatewayVirtualServiceHosts, MultipleSidecarsWithoutWorkloadSelectors, InvalidRegexp, NoMatchingWorkloadsFound,
		NoServerCertVerificationDestinationLevel, NoServerCertVerificationPortLevel, UnsupportedByMizzen, VirtualServiceNotVisible,
		PathMatchLooksLikePattern, ServiceOutsideDiscovery} {
		if !ids[want] {
			t.Errorf("no golden case produces %s", want)
		}
	}
}
