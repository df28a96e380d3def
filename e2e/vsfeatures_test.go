package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// featuresVS exercises the VirtualService HTTP features through the bookinfo
// ingress gateway: the same route translation sidecars get, seen by a real Envoy
// and real backends.
const featuresVS = `  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: delay
    match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 500ms, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: redirect
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example.com, redirectCode: 302}
  - name: rewrite
    match: [{uri: {prefix: /v1/}}]
    rewrite: {uri: /api/, authority: reviews.internal}
    headers:
      request: {set: {x-added: "yes"}, remove: [x-secret]}
      response: {set: {x-resp: "%HOSTNAME%-ok"}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: regex-rewrite
    match: [{uri: {prefix: /svc/}}]
    rewrite: {uriRegexRewrite: {match: "^/svc/([^/]+)/(.*)$", rewrite: '/\2/\1'}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mirror
    match: [{uri: {prefix: /mirror}}]
    mirror: {host: reviews, subset: v3}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://ok.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      maxAge: 1h
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
`

func TestGatewayVirtualServiceFeatures(t *testing.T) {
	b := rig.Bookinfo(t)
	b.WriteConfig(t, "features.yaml", reviewsVS("features", featuresVS))
	eventually(t, 10*time.Second, "features VirtualService served", func(ctx context.Context) error {
		r, err := b.Get(ctx, reviewsHost, "/v1/x", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Body.Path != "/api/x" {
			return fmt.Errorf("GET /v1/x: %d, app saw %q", r.Status, r.Body.Path)
		}
		return nil
	})
	noFollow := &http.Client{Transport: b.Client.Transport, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(t *testing.T, method, path string, headers map[string]string) (*http.Response, echo.Response) {
		t.Helper()
		req, _ := http.NewRequest(method, b.GatewayURL+path, nil)
		req.Host = reviewsHost
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var body echo.Response
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}

	t.Run("fault abort 50%", func(t *testing.T) {
		const n = 1000
		aborted := 0
		for i := 0; i < n; i++ {
			resp, _ := do(t, http.MethodGet, "/abort", nil)
			switch resp.StatusCode {
			case 503:
				aborted++
			case 200:
			default:
				t.Fatalf("GET /abort: unexpected %d", resp.StatusCode)
			}
		}
		share := float64(aborted) / n
		t.Logf("aborted %d of %d", aborted, n)
		if share < 0.43 || share > 0.57 {
			t.Errorf("aborted share %.3f, want 0.50 ± 0.07 (4.4σ at N=1000)", share)
		}
	})

	t.Run("fault delay", func(t *testing.T) {
		// Envoy's timers run on its loop's cached clock and may fire a few ms
		// before the client's clock says the delay is up.
		start := time.Now()
		resp, body := do(t, http.MethodGet, "/delay", nil)
		if took := time.Since(start); resp.StatusCode != 200 || body.Version != "v1" || took < 490*time.Millisecond {
			t.Errorf("GET /delay: %d from %q after %s, want 200 from v1 after >= 500ms (-10ms)", resp.StatusCode, body.Version, took)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		resp, _ := do(t, http.MethodGet, "/old", nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "http://new.example.com/new" {
			t.Errorf("GET /old: %d Location %q, want 302 http://new.example.com/new", resp.StatusCode, loc)
		}
	})

	t.Run("rewrite and headers", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, "/v1/items?q=1", map[string]string{"x-secret": "s"})
		switch {
		case resp.StatusCode != 200 || body.Path != "/api/items?q=1":
			t.Errorf("GET /v1/items: %d, app saw path %q, want /api/items?q=1", resp.StatusCode, body.Path)
		case body.Host != "reviews.internal":
			t.Errorf("app saw Host %q, want reviews.internal", body.Host)
		case body.Header("x-added") != "yes" || body.Header("x-secret") != "":
			t.Errorf("app saw x-added=%q x-secret=%q, want yes and nothing", body.Header("x-added"), body.Header("x-secret"))
		case !strings.HasSuffix(resp.Header.Get("x-resp"), "-ok") || resp.Header.Get("x-resp") == "-ok":
			t.Errorf("response x-resp = %q, want <hostname>-ok", resp.Header.Get("x-resp"))
		}
		resp, body = do(t, http.MethodGet, "/svc/orders/list", nil)
		if resp.StatusCode != 200 || body.Path != "/list/orders" {
			t.Errorf("GET /svc/orders/list: %d, app saw %q, want /list/orders", resp.StatusCode, body.Path)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		v3 := b.Apps["reviews-v3"]
		before := v3.Requests()
		const n = 20
		for i := 0; i < n; i++ {
			if resp, body := do(t, http.MethodGet, "/mirror", nil); resp.StatusCode != 200 || body.Version != "v1" {
				t.Fatalf("GET /mirror: %d from %q, want 200 from v1 (the mirror's answers are dropped)", resp.StatusCode, body.Version)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := rig.Eventually(ctx, 50*time.Millisecond, func(context.Context) error {
			if got := v3.Requests() - before; got < n {
				return fmt.Errorf("mirror backend got %d of %d copies", got, n)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})

	t.Run("cors", func(t *testing.T) {
		resp, _ := do(t, http.MethodOptions, "/cors", map[string]string{
			"Origin": "https://ok.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-token"})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); resp.StatusCode != 200 || got != "https://ok.example" {
			t.Errorf("preflight from allowed origin: %d allow-origin %q", resp.StatusCode, got)
		}
		if got := resp.Header.Get("Access-Control-Max-Age"); got != "3600" {
			t.Errorf("preflight max-age %q, want 3600", got)
		}
		resp, _ = do(t, http.MethodGet, "/cors", map[string]string{"Origin": "https://evil.example"})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("simple request from another origin got allow-origin %q", got)
		}
		resp, _ = do(t, http.MethodGet, "/cors", map[string]string{"Origin": "https://ok.example"})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://ok.example" {
			t.Errorf("simple request from allowed origin got allow-origin %q", got)
		}
	})

	if t.Failed() {
		names, _ := b.Gateway.ListenerNames(context.Background())
		t.Log("gateway listeners:", names)
	}
}
