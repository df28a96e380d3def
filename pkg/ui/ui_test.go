package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
)

// fixtureDebug serves testdata/<name>.json for /debug/<name>, standing in
// for mizzen's debug handler: the UI's view logic is tested on exactly the
// JSON the handlers write; TestWebUI (e2e) runs it against the real thing.
func fixtureDebug(t *testing.T) http.Handler {
	t.Helper()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("testdata/" + strings.TrimPrefix(r.URL.Path, "/debug/") + ".json")
		if err != nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
}

func TestMesh(t *testing.T) {
	h := &handler{debug: fixtureDebug(t)}
	m, err := h.mesh()
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 7 || !slices.Equal(m.Entries, []string{"mesh"}) {
		t.Errorf("version %d entries %v", m.Version, m.Entries)
	}
	if len(m.Routes) != 3 {
		t.Fatalf("routes: %+v", m.Routes)
	}
	r0, r1, r2 := m.Routes[0], m.Routes[1], m.Routes[2]
	if r0.Rule != "testers" || r0.Match != "x-tester exact yes" || r0.Fault != "delay 2s (50%)" || len(r0.To) != 1 || r0.To[0].Weight != 100 {
		t.Errorf("rule testers: %+v", r0)
	}
	want := []Dest{{Service: "shop/web", Subset: "v1", Weight: 75}, {Service: "shop/web", Subset: "v2", Weight: 25}}
	if !slices.Equal(r1.To, want) || r1.Mirror != "shop/audit (10%)" {
		t.Errorf("rule http[1]: %+v", r1)
	}
	if len(r2.To) != 1 || r2.To[0].Service != "api.example.com" {
		t.Errorf("rule http[2]: %+v", r2)
	}
	if len(r0.Errors) != 1 || !strings.Contains(r0.Errors[0], "IST0101") {
		t.Errorf("the VirtualService's error is not on it: %v", r0.Errors)
	}
	byPod := map[string]*Workload{}
	var external bool
	for _, s := range m.Services {
		external = external || (s.External && s.Host == "api.example.com")
		for _, w := range s.Workloads {
			byPod[w.Pod] = w
		}
	}
	if !external {
		t.Error("api.example.com, backed by no Service, is not an external node")
	}
	if w := byPod["web-v1-0"]; w == nil || w.MTLS != "STRICT" || w.MTLSFrom != "PeerAuthentication shop/strict" ||
		!slices.Equal(w.Policies, []string{"istio-system/allow-all (ALLOW)", "shop/deny-admin (DENY)"}) || len(w.Errors) != 1 {
		t.Errorf("web-v1-0: %+v", w)
	}
	if w := byPod["audit-0"]; w == nil || w.MTLS != "DISABLE" || !slices.Equal(w.Policies, []string{"istio-system/allow-all (ALLOW)"}) {
		t.Errorf("audit-0: %+v", w)
	}
	if len(m.Errors) != 1 || !strings.Contains(m.Errors[0], "Sidecar shop/lonely") {
		t.Errorf("errors without a place: %v", m.Errors)
	}
	for _, text := range []string{"→ shop/web v1  75%", "→ shop/web v2  25%", "fault: delay 2s (50%)", "mirror → shop/audit (10%)",
		"web-v1-0  mTLS STRICT", "authz shop/deny-admin (DENY)", "api.example.com &lt;"} {
		if !strings.Contains(m.SVG, text) {
			t.Errorf("the graph lacks %q", text)
		}
	}
	if strings.Contains(m.SVG, "<not") {
		t.Error("the graph carries unescaped text")
	}
}

func TestPagesAndAssets(t *testing.T) {
	srv := httptest.NewServer(Handler(fixtureDebug(t)))
	defer srv.Close()
	for path, want := range map[string]string{
		"/ui/":          `data-page="proxies"`,
		"/ui/changes":   "<title>Changes · mizzen</title>",
		"/ui/mesh":      `data-page="mesh"`,
		"/ui/explain":   `data-page="explain"`,
		"/ui/app.js":    "renderProxies",
		"/ui/style.css": "--ok-fg",
		"/ui/api/mesh":  `"virtual_service": "shop/web"`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, want %q in:\n%.300s", path, resp.StatusCode, want, b)
		}
	}
	resp, err := http.Get(srv.URL + "/ui/api/explain?proxy=nobody&url=http://x/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("explain for an unknown proxy: %d", resp.StatusCode)
	}
}
