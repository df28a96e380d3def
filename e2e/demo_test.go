package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestMakeRunDemo is `make run` as a newcomer meets it (issue 16): the
// command comes up on the bookinfo example and prints what to open; the
// printed gateway answers /productpage 200 through a real Envoy; /reviews
// splits 90/10; an edit of the VirtualService file to 50/50 shows through
// the gateway; the web view answers; Ctrl-C (SIGINT) stops it with status 0
// and leaves no process and no port behind.
func TestMakeRunDemo(t *testing.T) {
	start := time.Now()
	d := rig.StartDemo(t)
	t.Logf("demo up in %s", time.Since(start).Round(time.Millisecond))
	out := d.Output()
	for _, want := range []string{d.GatewayURL + "/productpage", d.UIURL, "virtualservice.yaml", "Ctrl-C"} {
		if !strings.Contains(out, want) {
			t.Errorf("the banner does not mention %q:\n%s", want, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 3 * time.Second}
	get := func(url string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get(echo.HeaderVersion), nil
	}
	if code, _, err := get(d.GatewayURL + "/productpage"); err != nil || code != 200 {
		t.Fatalf("GET %s/productpage: %d %v", d.GatewayURL, code, err)
	}
	if code, _, err := get(d.UIURL); err != nil || code != 200 {
		t.Errorf("GET %s: %d %v", d.UIURL, code, err)
	}
	// share of v2 in n requests to /api/v1/reviews/1
	share := func(n int) float64 {
		v2 := 0
		for i := 0; i < n; i++ {
			code, v, err := get(d.GatewayURL + "/api/v1/reviews/1")
			if err != nil || code != 200 {
				t.Fatalf("GET /api/v1/reviews/1: %d %v", code, err)
			}
			if v == "v2" {
				v2++
			}
		}
		return float64(v2) / float64(n)
	}
	// 400 requests: σ of the share at p=0.1 is 0.015; ±0.06 is 4σ.
	if s := share(400); s < 0.04 || s > 0.16 {
		t.Errorf("v2 share before the edit: %.3f, want 0.10 ± 0.06", s)
	}

	vs, err := os.ReadFile(filepath.Join(d.ConfigDir, "virtualservice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(strings.Replace(string(vs), "weight: 90", "weight: 50", 1), "weight: 10", "weight: 50", 1)
	if edited == string(vs) {
		t.Fatal("examples/bookinfo/virtualservice.yaml has no 90/10 weights to edit (the banner tells users to)")
	}
	at := d.WriteConfig(t, "virtualservice.yaml", edited)
	err = rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		// p=0.5 over 200: σ 0.035; 0.3..0.7 is > 5σ from both 0.1 and 0.5.
		if s := share(200); s < 0.3 || s > 0.7 {
			return fmt.Errorf("v2 share %.3f", s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the 50/50 edit never showed through the gateway: %v", err)
	}
	t.Logf("50/50 split seen through the gateway %s after the edit", time.Since(at).Round(time.Millisecond))

	// Ctrl-C.
	stopAt := time.Now()
	if err := d.Interrupt(ctx); err != nil {
		t.Fatalf("after SIGINT: %v\n%s", err, d.Output())
	}
	t.Logf("stopped %s after SIGINT", time.Since(stopAt).Round(time.Millisecond))
	if left := d.Leftovers(); len(left) > 0 {
		t.Errorf("processes left after SIGINT: %v", left)
	}
	for _, addr := range []string{"127.0.0.20:80", "127.0.0.20:15000", "127.0.0.1:15010", "127.0.0.1:15014", "127.0.1.1:9080", "127.0.1.6:9080"} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers after SIGINT", addr)
		}
	}
}
