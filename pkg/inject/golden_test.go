package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the current output")

// TestGolden runs `mizzen inject` on testdata/<case>.in.yaml (with the
// injector ConfigMap <case>.config.yaml when present; its `mesh` key stands in
// for the mesh config) and compares with <case>.out.yaml. Regenerate with
// go test ./pkg/inject/ -update and review the diff.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			cfg := goldenConfig(t, filepath.Join("testdata", name+".config.yaml"))
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := InjectYAML(bytes.NewReader(src), cfg, &got); err != nil {
				t.Fatal(err)
			}
			outPath := filepath.Join("testdata", name+".out.yaml")
			if *update {
				if err := os.WriteFile(outPath, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got.String() != string(want) {
				t.Errorf("output differs from %s (run with -update and review the diff):\n%s", outPath, got.String())
			}
			// Injecting the output again changes nothing.
			var again bytes.Buffer
			if _, err := InjectYAML(bytes.NewReader(got.Bytes()), cfg, &again); err != nil {
				t.Fatal(err)
			}
			if again.String() != got.String() {
				t.Errorf("second injection changed the output:\n%s", again.String())
			}
		})
	}
}

func goldenConfig(t *testing.T, path string) *Config {
	t.Helper()
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return DefaultConfig()
	}
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatal(err)
	}
	cfg, err := FromConfigMap(cm.Data, cm.Data["mesh"])
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
