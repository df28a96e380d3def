package translate_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the translators' output")

// A golden case is testdata/<case>.in.yaml: Kubernetes and Istio objects, plus
// documents of `kind: TestProxy` naming the proxies to translate for:
//
//	kind: TestProxy
//	id: router~127.0.0.20~gw-0.istio-system~istio-system.svc.cluster.local
//	metadata: {LABELS: {istio: ingressgateway}}
//	identity: spiffe://cluster.local/ns/istio-system/sa/gw   # optional
//
// identity stands for the SPIFFE ID the xds layer proved for the proxy's
// stream (model.Proxy.Identity); without it the proxy has none.
//
// The output, one YAML document per proxy, is testdata/<case>.out.yaml.
type testProxy struct {
	Kind     string         `json:"kind"`
	ID       string         `json:"id"`
	Metadata map[string]any `json:"metadata"`
	Identity string         `json:"identity"`
}

// parse is the proxy the case translates for.
func (tp testProxy) parse(t *testing.T) *model.Proxy {
	t.Helper()
	p, err := model.ParseProxy(tp.ID, tp.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	p.Identity = tp.Identity
	return p
}

func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, in := range cases {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			got := runCase(t, in)
			out := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run `go test ./translate/... -update` to create it)", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s differs from the translators' output; review the diff and run `go test ./translate/... -update`:\n%s", out, diff(string(want), string(got)))
			}
		})
	}
}

// loadCase reads a golden input: its objects built into a snapshot, and its
// TestProxy documents.
func loadCase(t *testing.T, path string) (*model.Snapshot, []testProxy) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var proxies []testProxy
	var objects []string
	for _, doc := range splitDocs(string(raw)) {
		var tp testProxy
		if err := yaml.Unmarshal([]byte(doc), &tp); err == nil && tp.Kind == "TestProxy" {
			proxies = append(proxies, tp)
			continue
		}
		objects = append(objects, doc)
	}
	return buildSnapshot(t, strings.Join(objects, "\n---\n")), proxies
}

func runCase(t *testing.T, path string) []byte {
	t.Helper()
	snap, proxies := loadCase(t, path)
	var out bytes.Buffer
	if len(snap.Errors) > 0 {
		var lines []string
		for _, e := range snap.Errors {
			lines = append(lines, e.Error())
		}
		appendYAML(t, &out, map[string]any{"configErrors": lines})
	}
	if len(proxies) == 0 {
		t.Fatal("golden case has no TestProxy document")
	}
	for _, tp := range proxies {
		o := translate.ForProxy(snap, tp.parse(t))
		doc := map[string]any{"proxy": tp.ID}
		if tp.Identity != "" {
			doc["identity"] = tp.Identity
		}
		doc["clusters"] = toYAMLList(t, o.Clusters)
		doc["endpoints"] = toYAMLList(t, o.Endpoints)
		doc["listeners"] = toYAMLList(t, o.Listeners)
		doc["routes"] = toYAMLList(t, o.Routes)
		appendYAML(t, &out, doc)
	}
	return out.Bytes()
}

func appendYAML(t *testing.T, out *bytes.Buffer, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() > 0 {
		out.WriteString("---\n")
	}
	out.Write(b)
}

// toYAMLList renders protos through protojson (Anys expanded) into plain values,
// so the YAML is stable and readable in review.
func toYAMLList[M proto.Message](t *testing.T, msgs []M) []any {
	out := []any{}
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func splitDocs(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// diff shows the first differing lines; enough to find the spot in review.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			lo := max(0, i-3)
			var b strings.Builder
			for j := lo; j < i; j++ {
				b.WriteString("  " + w[j] + "\n")
			}
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
			return b.String()
		}
	}
	return ""
}
