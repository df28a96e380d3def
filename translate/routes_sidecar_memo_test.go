package translate_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// TestVirtualHostMemoMatchesUnshared: route tables built with a memo shared
// by every proxy of a view equal the tables built alone, for every golden
// case's sidecars moved into each namespace the case knows (short names,
// sourceNamespace), in both orders (what the memo holds first differs).
func TestVirtualHostMemoMatchesUnshared(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	compared := 0
	for _, in := range cases {
		snap, tps := loadCase(t, in)
		nss := map[string]bool{"default": true}
		var proxies []*model.Proxy
		for _, tp := range tps {
			p := tp.parse(t)
			nss[p.Namespace] = true
			if p.Type != model.RouterProxy {
				proxies = append(proxies, p)
			}
		}
		for _, svc := range snap.Services() {
			nss[svc.Namespace] = true
		}
		var moved []*model.Proxy
		for _, p := range proxies {
			for ns := range nss {
				c := *p
				c.Namespace = ns
				moved = append(moved, &c)
			}
		}
		for pass := 0; pass < 2; pass++ {
			if pass == 1 {
				slices.Reverse(moved)
			}
			memos := map[string]*translate.VirtualHostMemo{}
			for _, p := range moved {
				sc := snap.ScopeFor(p)
				view := snap.View(sc)
				if memos[sc.Key] == nil {
					memos[sc.Key] = translate.NewVirtualHostMemo()
				}
				want := translate.SidecarOutboundRoutes(view, p)
				got := translate.SidecarOutboundRoutesShared(view, p, memos[sc.Key])
				if len(got) != len(want) {
					t.Fatalf("%s: proxy %s in %s: %d tables shared, %d alone", filepath.Base(in), p.ID, p.Namespace, len(got), len(want))
				}
				for i := range want {
					if !proto.Equal(got[i], want[i]) {
						t.Errorf("%s: proxy %s in %s: table %s differs when shared", strings.TrimSuffix(filepath.Base(in), ".in.yaml"), p.ID, p.Namespace, want[i].GetName())
					}
					compared++
				}
			}
		}
	}
	t.Logf("%d route tables compared", compared)
}
