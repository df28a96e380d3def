package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// mizzenCLI runs the mizzen binary with args (bounded by 20 s) and returns
// its stdout+stderr and exit error.
func mizzenCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, rig.MizzenBinary(t), args...).CombinedOutput()
	return string(out), err
}

var columnGap = regexp.MustCompile(`\s{2,}`)

// tableRows splits a CLI table into rows of cells (columns are separated by
// at least two spaces; cells hold at most single spaces), header dropped.
func tableRows(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		t.Fatalf("no table in %q", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, columnGap.Split(strings.TrimSpace(l), -1))
	}
	return rows
}

func joinRows(rows [][]string) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, strings.Join(r, " | "))
	}
	return out
}

// TestProxyConfigAgainstGateway: `mizzen proxy-config` shows the bookinfo
// gateway's clusters, listeners, routes and endpoints from mizzen's view and
// from the gateway's own Envoy admin, with the rows istioctl would show;
// `proxy-status <proxy> --admin` finds every type matching, and names the
// difference when pointed at another gateway's admin. The new debug endpoints
// answer through the real binary.
func TestProxyConfigAgainstGateway(t *testing.T) {
	b := rig.Bookinfo(t)
	gwID := rig.GatewayNodeID(b.GatewayIP)
	mz := []string{"--mizzen", "http://" + b.Mizzen.MonitoringAddr}
	view := func(t *testing.T, kind string, extra ...string) [][]string {
		t.Helper()
		out, err := mizzenCLI(t, append(append([]string{"proxy-config", kind, "istio-ingressgateway-0"}, mz...), extra...)...)
		if err != nil {
			t.Fatalf("proxy-config %s (mizzen's view): %v\n%s", kind, err, out)
		}
		return tableRows(t, out)
	}
	admin := func(t *testing.T, kind string, extra ...string) [][]string {
		t.Helper()
		out, err := mizzenCLI(t, append([]string{"proxy-config", kind, "--admin", b.Gateway.AdminAddr}, extra...)...)
		if err != nil {
			t.Fatalf("proxy-config %s --admin: %v\n%s", kind, err, out)
		}
		return tableRows(t, out)
	}
	services := []string{"details", "productpage", "ratings", "reviews"}

	t.Run("clusters", func(t *testing.T) {
		var want []string
		for _, s := range services {
			// Every bookinfo service has a DestinationRule of its name.
			want = append(want, s+".default.svc.cluster.local | 9080 | - | outbound | EDS | "+s+".default")
		}
		want = append(want, "reviews.default.svc.cluster.local | 9080 | v2 | outbound | EDS | reviews.default",
			"BlackHoleCluster | - | - | - | STATIC | -", "PassthroughCluster | - | - | - | ORIGINAL_DST | -")
		mine, envoy := joinRows(view(t, "clusters")), joinRows(admin(t, "clusters"))
		for _, w := range want {
			if !slices.Contains(mine, w) || !slices.Contains(envoy, w) {
				t.Errorf("row %q: in mizzen's view %v, in the admin's %v\nmizzen:\n%s\nadmin:\n%s", w,
					slices.Contains(mine, w), slices.Contains(envoy, w), strings.Join(mine, "\n"), strings.Join(envoy, "\n"))
			}
		}
		// The admin adds the bootstrap's xds-grpc cluster, nothing else; 13 are
		// bookinfo's 12 and prometheus_stats (the 15090 stats listener's).
		if len(envoy) != len(mine)+1 || !slices.Contains(envoy, "xds-grpc | - | - | - | STATIC | -") || len(mine) != 13 {
			t.Errorf("mizzen's view has %d clusters, the admin %d (want 13 and 14 with xds-grpc)", len(mine), len(envoy))
		}
		got := joinRows(view(t, "clusters", "--fqdn", "reviews", "--subset", "v3", "--port", "9080", "--direction", "outbound"))
		if !slices.Equal(got, []string{"reviews.default.svc.cluster.local | 9080 | v3 | outbound | EDS | reviews.default"}) {
			t.Errorf("clusters with filters: %v", got)
		}
	})

	t.Run("listeners", func(t *testing.T) {
		want := []string{b.GatewayIP + " | 80 | ALL | Route: http.80", b.GatewayIP + " | 15090 | ALL | Inline Route: /stats/prometheus"}
		if got := joinRows(view(t, "listeners")); !slices.Equal(got, want) {
			t.Errorf("mizzen's view: %v, want %v", got, want)
		}
		if got := joinRows(admin(t, "listeners")); !slices.Equal(got, want) {
			t.Errorf("the admin's: %v, want %v", got, want)
		}
	})

	t.Run("routes", func(t *testing.T) {
		var want []string
		for _, m := range []string{"/productpage", "/static*", "/login", "/logout", "/api/v1/products*", "/api/v1/reviews*"} {
			want = append(want, "http.80 | *:80 | * | "+m+" | bookinfo.default")
		}
		if got := joinRows(view(t, "routes")); !slices.Equal(got, want) {
			t.Errorf("mizzen's view: %v, want %v", got, want)
		}
		if got := joinRows(admin(t, "routes", "--name", "http.80")); !slices.Equal(got, want) {
			t.Errorf("the admin's: %v, want %v", got, want)
		}
	})

	t.Run("endpoints", func(t *testing.T) {
		cluster := "outbound|9080||reviews.default.svc.cluster.local"
		var want, wantView []string
		for _, a := range rig.BookinfoApps {
			if a.Service == "reviews" {
				want = append(want, a.Addr+" | HEALTHY | OK | "+cluster)
				wantView = append(wantView, a.Addr+" | HEALTHY | - | "+cluster)
			}
		}
		if got := joinRows(admin(t, "endpoints", "--cluster", cluster)); !slices.Equal(got, want) {
			t.Errorf("the admin's: %v, want %v", got, want)
		}
		if got := joinRows(view(t, "endpoints", "--cluster", cluster)); !slices.Equal(got, wantView) {
			t.Errorf("mizzen's view: %v, want %v", got, wantView)
		}
		if n := len(admin(t, "endpoints", "--status", "HEALTHY")); n != 14 {
			t.Errorf("the admin shows %d healthy endpoints, want 14 (12 in bookinfo's clusters, prometheus_stats and xds-grpc)", n)
		}
	})

	t.Run("json", func(t *testing.T) {
		out, err := mizzenCLI(t, "proxy-config", "clusters", "--admin", b.Gateway.AdminAddr, "--fqdn", "ratings", "-o", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var cs []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			t.Fatalf("-o json: %v\n%s", err, out)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name+" "+c.Type)
		}
		want := []string{"outbound|9080|v1|ratings.default.svc.cluster.local EDS", "outbound|9080||ratings.default.svc.cluster.local EDS"}
		if !slices.Equal(names, want) {
			t.Errorf("-o json clusters: %v, want %v", names, want)
		}
	})

	t.Run("proxy-status", func(t *testing.T) {
		out, err := mizzenCLI(t, append([]string{"proxy-status", "istio-ingressgateway-0", "--admin", b.Gateway.AdminAddr}, mz...)...)
		if err != nil || !strings.Contains(out, "Clusters Match\nListeners Match\nRoutes Match (RDS last loaded at ") || !strings.HasSuffix(out, "\nEndpoints Match\n") {
			t.Fatalf("proxy-status --admin (%v):\n%s", err, out)
		}
		// A second gateway on 127.0.0.21: same clusters and routes, its own
		// listener address. Compared with the first one's view, only the
		// listeners differ, and the diff says how.
		const ip2 = "127.0.0.21"
		gw2 := rig.StartEnvoy(t, rig.EnvoyOptions{NodeID: rig.GatewayNodeID(ip2), Cluster: "istio-ingressgateway.istio-system",
			Metadata: rig.GatewayMetadata(ip2), XDSAddr: b.Mizzen.XDSAddr})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(context.Context) error {
			out, err = mizzenCLI(t, append([]string{"proxy-status", "router~" + ip2 + "~", "--admin", gw2.AdminAddr}, mz...)...)
			return err
		}); err != nil {
			t.Fatalf("the second gateway never matched mizzen's view: %v\n%s", err, out)
		}
		out, err = mizzenCLI(t, append([]string{"proxy-status", "istio-ingressgateway-0"}, mz...)...)
		if err != nil || strings.Count(out, "istio-ingressgateway-0.istio-system") != 2 {
			t.Errorf("proxy-status list with two gateways (%v):\n%s", err, out)
		}
		out, err = mizzenCLI(t, append([]string{"proxy-status", "istio-ingressgateway-0", "--admin", gw2.AdminAddr}, mz...)...)
		if err == nil || !strings.Contains(out, "matches 2 proxies") {
			t.Errorf("an ambiguous proxy name (%v):\n%s", err, out)
		}
		out, err = mizzenCLI(t, append([]string{"proxy-status", gwID, "--admin", gw2.AdminAddr}, mz...)...)
		if err == nil || !strings.Contains(out, "Clusters Match\nListeners Don't Match\n--- mizzen ") ||
			!strings.Contains(out, " @@ # listener 0.0.0.0_80\n") ||
			!strings.Contains(out, `-      "address": "`+b.GatewayIP+`"`) || !strings.Contains(out, `+      "address": "`+ip2+`"`) ||
			!strings.Contains(out, "Routes Match") || !strings.Contains(out, "Endpoints Match") {
			t.Errorf("proxy-status of gateway 1 against gateway 2's admin (%v):\n%s", err, out)
		}
	})

	t.Run("debug", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		body, err := b.Mizzen.Get(ctx, "/debug/configz?kind=Gateway")
		if err != nil {
			t.Fatal(err)
		}
		var cz struct {
			Objects map[string]map[string]json.RawMessage `json:"objects"`
		}
		if err := json.Unmarshal(body, &cz); err != nil || len(cz.Objects) != 1 || cz.Objects["Gateway"]["default/bookinfo-gateway"] == nil {
			t.Errorf("configz?kind=Gateway (%v):\n%s", err, body)
		}
		body, err = b.Mizzen.Get(ctx, "/debug/push_status")
		if err != nil {
			t.Fatal(err)
		}
		var ps struct {
			LastPush struct {
				Version uint64 `json:"version"`
				Trigger string `json:"trigger"`
			} `json:"last_push"`
			Pushes  int `json:"pushes"`
			Proxies []struct {
				Proxy string `json:"proxy"`
				Types map[string]struct {
					Acks int `json:"acks"`
				} `json:"types"`
			} `json:"proxies"`
		}
		if err := json.Unmarshal(body, &ps); err != nil || ps.Pushes < 1 || ps.LastPush.Version < 1 || ps.LastPush.Trigger != "config" {
			t.Errorf("push_status (%v):\n%s", err, body)
		}
		found := false
		for _, p := range ps.Proxies {
			found = found || (p.Proxy == gwID && p.Types["cds"].Acks >= 1 && p.Types["rds"].Acks >= 1)
		}
		if !found {
			t.Errorf("push_status lacks the gateway with ACKed cds and rds:\n%s", body)
		}
	})
}

// TestProxyConfigSidecars: on real sidecars (mesh rig, Kubernetes mode) mizzen's
// view and each sidecar's own config match for every type, inbound side
// included, and proxy-config shows the sidecar's listeners, clusters and the
// VirtualService behind its routes from both sides.
func TestProxyConfigSidecars(t *testing.T) {
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Selector: map[string]string{"app": "web"},
		Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}, {Name: "tcp-echo", Port: 9000}}})
	web1 := m.AddWorkload(t, rig.WorkloadSpec{Name: "web-v1", IP: "198.18.3.1", Labels: map[string]string{"app": "web", "version": "v1"},
		App: rig.AppSpec{Ports: []int{8080}, TCPPorts: []int{9000}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.3.10", Labels: map[string]string{"app": "client"}, Sidecar: true})
	m.API.Apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: web, subset: v1}}]
  - route: [{destination: {host: web}}]
`)
	mz := []string{"--monitoring-addr", m.Mizzen.MonitoringAddr}

	for _, w := range []string{"web-v1", "client"} {
		var out string
		if err := rig.Eventually(ctx, 200*time.Millisecond, func(context.Context) error {
			var err error
			wl := map[string]string{"web-v1": "198.18.3.1", "client": "198.18.3.10"}[w]
			out, err = mizzenCLI(t, append([]string{"proxy-status", w + ".default", "--admin", wl + ":15000"}, mz...)...)
			if err != nil || !strings.Contains(out, "Routes Match") {
				return fmt.Errorf("%v", err)
			}
			return nil
		}); err != nil {
			t.Fatalf("proxy-status %s --admin never matched: %v\n%s", w, err, out)
		}
		if !strings.Contains(out, "Clusters Match\nListeners Match\nRoutes Match") || !strings.HasSuffix(out, "Endpoints Match\n") {
			t.Errorf("proxy-status %s --admin:\n%s", w, out)
		}
	}

	// The client's routes name the VirtualService; the header match shows.
	out, err := mizzenCLI(t, "proxy-config", "routes", "--admin", client.Envoy.AdminAddr, "--name", "80")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rows []string
	for _, r := range tableRows(t, out) {
		if r[1] == web.Hostname+":80" {
			rows = append(rows, r[3]+" | "+r[4])
		}
	}
	if want := []string{"/* (x-canary=yes) | web.default", "/* | web.default"}; !slices.Equal(rows, want) {
		t.Errorf("client routes for %s: %v, want %v\n%s", web.Hostname, rows, want, out)
	}

	// The server's listeners: capture ports, its TCP service's VIP listener,
	// and inbound chains per port, from both sides.
	for _, args := range [][]string{
		append([]string{"proxy-config", "listeners", "web-v1.default"}, mz...),
		{"proxy-config", "listeners", "--admin", "198.18.3.1:15000"},
	} {
		out, err := mizzenCLI(t, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got := joinRows(tableRows(t, out))
		for _, want := range []string{
			"0.0.0.0 | 80 | ALL | Route: 80",
			web.ClusterIP + " | 9000 | ALL | Cluster: outbound|9000||" + web.Hostname,
			"0.0.0.0 | 15001 | ALL | Cluster: PassthroughCluster",
			// PERMISSIVE (no PeerAuthentication): per port a plaintext chain
			// and an mTLS one, then the passthrough chains.
			"0.0.0.0 | 15006 | Port: 8080; Trans: raw_buffer | Inline Route: /*",
			"0.0.0.0 | 15006 | Port: 9000; Trans: raw_buffer | Cluster: inbound|9000||",
			"0.0.0.0 | 15006 | Trans: raw_buffer | Cluster: InboundPassthroughCluster",
		} {
			if !slices.Contains(got, want) {
				t.Errorf("%v: no row %q in\n%s", args, want, out)
			}
		}
		if !slices.ContainsFunc(got, func(r string) bool {
			return strings.HasPrefix(r, "0.0.0.0 | 15006 | Port: 8080; Trans: tls; App: istio") && strings.HasSuffix(r, " | Inline Route: /*")
		}) {
			t.Errorf("%v: no mTLS chain for port 8080 in\n%s", args, out)
		}
	}
	// Secrets: the workload certificate and the root in mizzen's view (served
	// without private keys), the same serials in the sidecar.
	var secretRows [2][]string
	for i, args := range [][]string{
		append([]string{"proxy-config", "secret", "web-v1.default"}, mz...),
		{"proxy-config", "secret", "--admin", "198.18.3.1:15000"},
	} {
		out, err := mizzenCLI(t, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, r := range tableRows(t, out) {
			if len(r) != 7 || r[3] != "true" || r[2] != "ACTIVE" {
				t.Errorf("%v: row %q is not an ACTIVE valid certificate\n%s", args, r, out)
				continue
			}
			secretRows[i] = append(secretRows[i], r[0]+" | "+r[1]+" | "+r[4])
		}
	}
	if len(secretRows[0]) != 2 || !strings.HasPrefix(secretRows[0][0], "ROOTCA | CA | ") || !strings.HasPrefix(secretRows[0][1], "default | Cert Chain | ") ||
		!slices.Equal(secretRows[0], secretRows[1]) {
		t.Errorf("secrets in mizzen's view %v, in the sidecar %v; want ROOTCA (CA) and default (Cert Chain), the same in both",
			secretRows[0], secretRows[1])
	}
	dump, err := m.Mizzen.Get(ctx, "/debug/config_dump?proxyID="+url.QueryEscape(web1.ProxyID))
	if err != nil || !strings.Contains(string(dump), `"certificateChain"`) || strings.Contains(strings.ToLower(string(dump)), "privatekey") {
		t.Errorf("mizzen's config_dump of web-v1 must carry certificates and no private key (%v)", err)
	}

	out, err = mizzenCLI(t, append([]string{"proxy-config", "clusters", "web-v1.default", "--direction", "inbound"}, mz...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// inbound|<target port>||, no FQDN: the first cell is empty.
	want := []string{"8080 | - | inbound | ORIGINAL_DST | -", "9000 | - | inbound | ORIGINAL_DST | -"}
	if got := joinRows(tableRows(t, out)); !slices.Equal(got, want) {
		t.Errorf("web-v1's inbound clusters: %v, want %v\n%s", got, want, out)
	}
}
