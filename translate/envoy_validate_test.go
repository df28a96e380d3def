package translate_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mizzenmesh/mizzen/translate"
)

// validatable is every go-control-plane message: ValidateAll checks the
// protoc-gen-validate rules Envoy enforces before it even looks at a resource
// (lengths, ranges, required oneofs). A violation is a NACK; this finds it
// without starting Envoy (e2e TestGoldenCasesAcceptedByEnvoy is the real check).
type validatable interface{ ValidateAll() error }

func TestGoldenOutputPassesEnvoyValidation(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, in := range cases {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			snap, proxies := loadCase(t, in)
			for _, tp := range proxies {
				p := tp.parse(t)
				o := translate.ForProxy(snap, p)
				check := func(kind, name string, m validatable) {
					if err := m.ValidateAll(); err != nil {
						t.Errorf("%s: %s %s would be NACKed: %v", tp.ID, kind, name, err)
					}
				}
				for _, c := range o.Clusters {
					check("cluster", c.GetName(), c)
				}
				for _, e := range o.Endpoints {
					check("endpoints", e.GetClusterName(), e)
				}
				for _, l := range o.Listeners {
					check("listener", l.GetName(), l)
				}
				for _, r := range o.Routes {
					check("route", r.GetName(), r)
				}
				// Hash policies are not wired into routes yet; check them for every cluster.
				for _, c := range o.Clusters {
					for _, hp := range translate.HashPolicies(snap, p.Namespace, c.GetName()) {
						check("hash policy of", c.GetName(), hp)
					}
				}
			}
		})
	}
}
