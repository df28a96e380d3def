// Package ui is mizzen's web view, served under /ui/ on the monitoring port
// next to /debug/ (and, like it, to loopback clients only: the caller wraps
// it). It shows what /debug/ knows — the proxies and their sync state, each
// change and who ACKed it when, the mesh's routes, and explain's walk of a
// request — in one place.
//
// It reads nothing but the /debug/ JSON handlers, called in process: the web
// view can show no more than the debug API does, and the two can't drift.
// The pages are plain HTML, CSS and JavaScript embedded in the binary, so
// `go build` alone produces them and nothing is fetched from elsewhere.
package ui

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
)

//go:embed static
var static embed.FS

// Pages are the web view's pages, by path under /ui/.
var pages = map[string]string{"": "Proxies", "changes": "Changes", "mesh": "Mesh", "explain": "Explain"}

// Handler serves /ui/: the pages, their assets, and two computed views
// (/ui/api/mesh, /ui/api/explain). debug is mizzen's /debug/ handler.
func Handler(debug http.Handler) http.Handler {
	h := &handler{debug: debug}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	assets := http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
	mux := http.NewServeMux()
	mux.HandleFunc("/ui/api/mesh", h.serveMesh)
	mux.HandleFunc("/ui/api/explain", h.serveExplain)
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/ui/"), "/")
		if _, ok := pages[name]; ok {
			h.servePage(w, r, sub, name)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
	return mux
}

type handler struct {
	debug http.Handler
}

// servePage serves the one HTML shell with the page's name in it; app.js
// renders the page.
func (h *handler) servePage(w http.ResponseWriter, _ *http.Request, sub fs.FS, name string) {
	b, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	title := pages[name]
	page := name
	if page == "" {
		page = "proxies"
	}
	b = bytes.ReplaceAll(b, []byte("{{PAGE}}"), []byte(page))
	b = bytes.ReplaceAll(b, []byte("{{TITLE}}"), []byte(title))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// getDebug calls a /debug/ handler in process and decodes its JSON.
func (h *handler) getDebug(path string, v any) error {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	h.debug.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
