package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// agentSecretTTL is the certificate lifetime the agents ask for (SECRET_TTL):
// short, so each rotates its certificate (at about half of it) while the
// test runs.
const agentSecretTTL = 30 * time.Second

// TestAgentMesh: Istio's own pilot-agent as the sidecar of real pods, beside
// sidecars mizzen bootstraps itself, in one mesh. Every agent-side check runs
// against an agent in delta mode (pilot-agent's default) and one in SotW mode
// (ISTIO_DELTA_XDS=false), on both ends of the traffic.
//
//	web-v1        198.18.20.1   agent, delta   app=web version=v1  (Service web :80 → 8080)
//	web-v2        198.18.20.2   agent, SotW    app=web version=v2
//	client-delta  198.18.20.10  agent, delta   sa client-delta
//	client-sotw   198.18.20.11  agent, SotW    sa client-sotw
//	plain-server  198.18.20.20  mizzen-bootstrapped sidecar (Service plain :80 → 8080)
//	plain-client  198.18.20.21  mizzen-bootstrapped sidecar, sa plain-client
//	legacy        198.18.20.30  no sidecar
func TestAgentMesh(t *testing.T) {
	// Istio's build first (cached; cold it takes long), so the test's own
	// deadlines measure the test.
	rig.IstioBinary(t, "pilot-agent")
	began := time.Now()
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns = "default"
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: map[string]string{"app": "web"}})
	plainSvc := m.AddService(t, rig.ServiceSpec{Name: "plain", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: map[string]string{"app": "plain"}})

	agent := func(name, ip, sa string, sotw bool, labels map[string]string, ports ...int) *rig.Agent {
		return m.AddAgent(t, rig.AgentSpec{Name: name, IP: ip, ServiceAccount: sa, Labels: labels, SotW: sotw,
			SecretTTL: agentSecretTTL, App: rig.AppSpec{Ports: ports}})
	}
	webV1 := agent("web-v1", "198.18.20.1", "web", false, map[string]string{"app": "web", "version": "v1"}, 8080)
	webV2 := agent("web-v2", "198.18.20.2", "web", true, map[string]string{"app": "web", "version": "v2"}, 8080)
	clientDelta := agent("client-delta", "198.18.20.10", "client-delta", false, map[string]string{"app": "client-delta"})
	clientSotW := agent("client-sotw", "198.18.20.11", "client-sotw", true, map[string]string{"app": "client-sotw"})
	agents := []*rig.Agent{webV1, webV2, clientDelta, clientSotW}
	clients := []*rig.Agent{clientDelta, clientSotW}
	plainServer := m.AddWorkload(t, rig.WorkloadSpec{Name: "plain-server", IP: "198.18.20.20", ServiceAccount: "plain-server",
		Labels: map[string]string{"app": "plain"}, App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	plainClient := m.AddWorkload(t, rig.WorkloadSpec{Name: "plain-client", IP: "198.18.20.21", ServiceAccount: "plain-client",
		Labels: map[string]string{"app": "plain-client"}, Sidecar: true})
	legacy := m.AddWorkload(t, rig.WorkloadSpec{Name: "legacy", IP: "198.18.20.30", Labels: map[string]string{"app": "legacy"}})
	t.Logf("mesh of %d agent pods and 2 mizzen-bootstrapped sidecars up in %s", len(agents), time.Since(began).Round(time.Millisecond))
	for _, a := range agents {
		waitForEndpoint(t, ctx, a.Envoy, "outbound|80||"+web.Hostname, webV1.IP+":8080", true)
		waitForEndpoint(t, ctx, a.Envoy, "outbound|80||"+web.Hostname, webV2.IP+":8080", true)
		waitForEndpoint(t, ctx, a.Envoy, "outbound|80||"+plainSvc.Hostname, plainServer.IP+":8080", true)
	}
	spiffe := func(sa string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa }

	t.Run("every proxy SYNCED in proxy-status", func(t *testing.T) {
		names := []string{agentPodName(plainServer), agentPodName(plainClient)}
		for _, a := range agents {
			names = append(names, agentPodName(a.Workload))
		}
		// mizzen serves an agent's proxy no secrets (the agent does): its SDS
		// column is "-"; the sidecars mizzen bootstraps get theirs from mizzen.
		checks := map[string]func(map[string]string) error{}
		for _, a := range agents {
			checks[agentPodName(a.Workload)] = agentRowCheck(a, "-")
		}
		table, err := waitProxyStatusSynced(ctx, t, m.Mizzen, names, func(name string, row map[string]string) error {
			if c := checks[name]; c != nil {
				return c(row)
			}
			if row["SDS"] != "SYNCED" || row["XDS"] != "sotw" {
				return fmt.Errorf("%s: SDS %s XDS %s, want SYNCED sotw", name, row["SDS"], row["XDS"])
			}
			return nil
		})
		t.Logf("mizzen proxy-status:\n%s", table)
		if err != nil {
			t.Fatalf("not all SYNCED: %v", err)
		}
		checkAgentStreams(ctx, t, m.Mizzen, agents...)
	})

	t.Run("certificates from the CSR API, served by the agent over sds-grpc", func(t *testing.T) {
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		csrs, issued := mt.Sum("citadel_server_csr_count"), mt.Sum("citadel_server_success_cert_issuance_count")
		t.Logf("citadel_server_csr_count %v, citadel_server_success_cert_issuance_count %v (%d agents)", csrs, issued, len(agents))
		if issued < float64(len(agents)) {
			t.Errorf("%v certificates issued through the CSR API, want ≥ %d (one per agent)", issued, len(agents))
		}
		for _, a := range agents {
			var secrets map[string]envoySecret
			if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
				secrets, err = envoySecrets(ctx, a.Envoy)
				if err != nil {
					return err
				}
				d, r := secrets["default"], secrets["ROOTCA"]
				if d.Cert == nil || r.Cert == nil {
					return fmt.Errorf("secrets %v", sortedNames(secrets))
				}
				return nil
			}); err != nil {
				t.Errorf("%s: Envoy has no default/ROOTCA: %v", a.Name, err)
				continue
			}
			leaf := secrets["default"].Cert
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffe(a.ServiceAccount) {
				t.Errorf("%s: default certificate for %v, want %s", a.Name, leaf.URIs, spiffe(a.ServiceAccount))
			}
			if life := leaf.NotAfter.Sub(leaf.NotBefore); life > agentSecretTTL+time.Minute {
				t.Errorf("%s: certificate lifetime %s, want about SECRET_TTL %s (asked for by the agent)", a.Name, life, agentSecretTTL)
			}
			// The agent holds the key: Envoy must fetch default and ROOTCA from
			// the agent's sds-grpc, never from mizzen over ADS.
			srcs, err := sdsSources(ctx, a.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"default", "ROOTCA"} {
				if got := strings.Join(srcs[name], ","); got != "sds-grpc" {
					t.Errorf("%s: secret %s fetched from %q, want sds-grpc (the agent's SDS)", a.Name, name, got)
				}
			}
		}
	})

	t.Run("the agent rotates its certificate", func(t *testing.T) {
		before := map[string]envoySecret{}
		for _, a := range agents {
			s, err := envoySecrets(ctx, a.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			before[a.Name] = s["default"]
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		csrsBefore := mt.Sum("citadel_server_csr_count")
		start := time.Now()
		// Rotation is due at about half of SECRET_TTL after issuance.
		rctx, rcancel := context.WithTimeout(ctx, agentSecretTTL+15*time.Second)
		defer rcancel()
		for _, a := range agents {
			old := before[a.Name]
			if old.Cert == nil {
				t.Errorf("%s: no certificate to watch", a.Name)
				continue
			}
			var now envoySecret
			err := rig.Eventually(rctx, 250*time.Millisecond, func(ctx context.Context) error {
				s, err := envoySecrets(ctx, a.Envoy)
				if err != nil {
					return err
				}
				now = s["default"]
				if now.Cert == nil || now.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 {
					return fmt.Errorf("serial still %x", old.Cert.SerialNumber)
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s: certificate not rotated within %s: %v", a.Name, agentSecretTTL+15*time.Second, err)
				continue
			}
			if !now.Cert.NotBefore.After(old.Cert.NotBefore) || now.Cert.URIs[0].String() != spiffe(a.ServiceAccount) {
				t.Errorf("%s: new certificate %v valid from %s, old from %s", a.Name, now.Cert.URIs, now.Cert.NotBefore, old.Cert.NotBefore)
			}
			t.Logf("%s: serial %x → %x after %s", a.Name, old.Cert.SerialNumber, now.Cert.SerialNumber, time.Since(start).Round(time.Millisecond))
		}
		mt, err = m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after := mt.Sum("citadel_server_csr_count"); after < csrsBefore+float64(len(agents)) {
			t.Errorf("citadel_server_csr_count %v → %v, want ≥ %d more (each rotation is a CSR)", csrsBefore, after, len(agents))
		}
	})

	// who calls url from w and returns the status, the answering pod and the
	// caller identity the server's sidecar vouched for (XFCC).
	type answer struct {
		status int
		pod    string
		xfcc   string
		err    error
	}
	call := func(w *rig.Workload, url string) answer {
		status, r, err := w.Echo(ctx, "GET", url, nil)
		if err != nil || r == nil {
			return answer{status: status, err: fmt.Errorf("%v", err)}
		}
		return answer{status: status, pod: r.Pod, xfcc: r.Header("x-forwarded-client-cert")}
	}
	eventually := func(t *testing.T, what string, check func() error) {
		t.Helper()
		if err := rig.Eventually(ctx, 300*time.Millisecond, func(context.Context) error { return check() }); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	t.Run("STRICT mTLS between agent sidecars and mizzen-bootstrapped sidecars, both ways", func(t *testing.T) {
		m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: %s}
spec:
  mtls: {mode: STRICT}
`, ns))
		// Plaintext is refused by every sidecar, agent or not.
		eventually(t, "legacy refused", func() error {
			for _, target := range []string{webV1.IP, webV2.IP, plainServer.IP} {
				if a := call(legacy, "http://"+target+":8080/who"); a.err == nil {
					return fmt.Errorf("legacy → %s answered %d under STRICT", target, a.status)
				}
			}
			return nil
		})
		type pair struct {
			from   *rig.Workload
			url    string
			server map[string]bool // acceptable answering pods
		}
		webPods := map[string]bool{webV1.Name: true, webV2.Name: true}
		pairs := []pair{
			{clientDelta.Workload, plainSvc.URL("/who"), map[string]bool{plainServer.Name: true}}, // agent → mizzen sidecar
			{clientSotW.Workload, plainSvc.URL("/who"), map[string]bool{plainServer.Name: true}},
			{plainClient, web.URL("/who"), webPods},          // mizzen sidecar → agents
			{clientDelta.Workload, web.URL("/who"), webPods}, // agent → agent
			{clientSotW.Workload, web.URL("/who"), webPods},
		}
		for _, p := range pairs {
			want := "URI=" + spiffe(p.from.ServiceAccount)
			seen := map[string]bool{}
			eventually(t, p.from.Name+" → "+p.url, func() error {
				a := call(p.from, p.url)
				if a.err != nil || a.status != 200 || !p.server[a.pod] || !strings.Contains(a.xfcc, want) {
					return fmt.Errorf("%d from %q (%v), x-forwarded-client-cert %q, want 200 with %s", a.status, a.pod, a.err, a.xfcc, want)
				}
				seen[a.pod] = true
				if len(seen) < len(p.server) {
					return fmt.Errorf("answered only by %v so far", sortedNames(seen))
				}
				return nil
			})
			t.Logf("%s → %s over mTLS as %s (servers %v)", p.from.Name, p.url, want, sortedNames(seen))
		}
	})

	t.Run("AuthorizationPolicy by principals: the right caller 200, the other 403", func(t *testing.T) {
		policy := func(sa string) string {
			return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-callers, namespace: %s}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/%s/sa/%s"]}
`, ns, ns, sa)
		}
		defer m.API.Delete(t, policy("x"))
		for _, allowed := range clients {
			m.API.Apply(t, policy(allowed.ServiceAccount))
			eventually(t, "only "+allowed.Name, func() error {
				for _, c := range []*rig.Workload{clientDelta.Workload, clientSotW.Workload, plainClient} {
					want := 403
					if c == allowed.Workload {
						want = 200
					}
					// Both servers (one delta, one SotW agent) must enforce it.
					for i := 0; i < 4; i++ {
						if a := call(c, web.URL("/who")); a.status != want {
							return fmt.Errorf("%s → web: %d from %q (%v), want %d", c.Name, a.status, a.pod, a.err, want)
						}
					}
				}
				return nil
			})
			t.Logf("principal %s allowed, the others 403", spiffe(allowed.ServiceAccount))
		}
	})

	t.Run("90/10 subset split within 4σ", func(t *testing.T) {
		m.API.Apply(t, agentWebDR+agentWebVS(90, 10))
		for _, a := range clients {
			waitForRoute(t, ctx, a.Envoy, "80", "outbound|80|v2|"+web.Hostname, true)
			waitForEndpoint(t, ctx, a.Envoy, "outbound|80|v2|"+web.Hostname, webV2.IP+":8080", true)
			waitForEndpoint(t, ctx, a.Envoy, "outbound|80|v1|"+web.Hostname, webV1.IP+":8080", true)
		}
		const n = 1000
		sigma := math.Sqrt(0.1 * 0.9 / n)
		for _, c := range clients {
			res, err := c.Load(ctx, rig.LoadSpec{URL: web.URL("/split"), N: n, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			share := res.Share("v2")
			t.Logf("%s (%s): %s; v2 share %.3f (want 0.10 ± %.3f, 4σ at N=%d)", c.Name, agentMode(c), res.Summary(), share, 4*sigma, n)
			if res.Non2xx() != 0 || len(res.Records) != n {
				t.Errorf("%s: %d records, %d not 2xx: %v %v", c.Name, len(res.Records), res.Non2xx(), res.StatusCounts(), res.Errors(5))
			}
			if math.Abs(share-0.10) > 4*sigma {
				t.Errorf("%s: v2 share %.3f, want 0.10 ± %.3f (4σ at N=%d)", c.Name, share, 4*sigma, n)
			}
		}
	})

	t.Run("VirtualService changes reach every agent proxy with 0 failed requests under load", func(t *testing.T) {
		var runs []*rig.LoadRun
		loaders := []*rig.Workload{clientDelta.Workload, clientSotW.Workload, plainClient}
		for _, w := range loaders {
			run, err := w.StartLoad(ctx, rig.LoadSpec{URL: web.URL("/load"), N: 200000, Concurrency: 2, Duration: 90 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer run.Stop()
			runs = append(runs, run)
		}
		time.Sleep(300 * time.Millisecond)
		const changes = 20
		var worst time.Duration
		var total time.Duration
		start := time.Now()
		for i := 0; i < changes; i++ {
			acked := map[string]string{}
			for _, a := range agents {
				ps, err := m.Mizzen.ProxySync(ctx, a.ProxyID)
				if err != nil {
					t.Fatal(err)
				}
				acked[a.Name] = ps.Types["rds"].Acked
			}
			v1 := 10 + (i*37)%81
			applied := time.Now()
			m.API.Apply(t, agentWebVS(v1, 100-v1))
			for _, a := range agents {
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				err := m.WaitSyncedPast(wctx, a.ProxyID, "rds", acked[a.Name])
				wcancel()
				if err != nil {
					t.Errorf("change %d (v1 %d%%) did not reach %s (%s) within 5s: %v", i, v1, a.Name, agentMode(a), err)
				}
			}
			took := time.Since(applied)
			total += took
			worst = max(worst, took)
		}
		elapsed := time.Since(start)
		// The last weights are in every agent's Envoy.
		last := 10 + ((changes-1)*37)%81
		for _, a := range agents {
			if err := a.Envoy.WaitFor(ctx, func(ctx context.Context, e *rig.Envoy) error {
				return routeWeights(ctx, e, "80", web.Hostname, last, 100-last)
			}); err != nil {
				t.Errorf("%s: %v", a.Name, err)
			}
		}
		time.Sleep(300 * time.Millisecond)
		var requests, failed int
		for i, run := range runs {
			run.Stop()
			res, err := run.Wait()
			if err != nil {
				t.Fatal(err)
			}
			requests += len(res.Records)
			failed += res.Non2xx()
			t.Logf("load from %s: %s", loaders[i].Name, res.Summary())
			if n := res.Non2xx(); n != 0 {
				t.Errorf("%s: %d of %d requests not 2xx: %v %v", loaders[i].Name, n, len(res.Records), res.StatusCounts(), res.Errors(5))
			}
		}
		t.Logf("%d VirtualService changes in %s, each ACKed by all %d agents in %s on average (worst %s); %d requests, %d failed",
			changes, elapsed.Round(time.Millisecond), len(agents), (total / changes).Round(time.Millisecond), worst.Round(time.Millisecond), requests, failed)
		if requests < 1000 {
			t.Errorf("only %d requests during the changes", requests)
		}
	})

	t.Run("nothing pushed collides with the agent bootstrap; nothing rejected", func(t *testing.T) {
		for _, a := range agents {
			bad, err := bootstrapCollisions(ctx, a.Envoy, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bad {
				t.Errorf("%s: %s", a.Name, b)
			}
		}
		for _, w := range append([]*rig.Workload{plainServer, plainClient}, webV1.Workload, webV2.Workload, clientDelta.Workload, clientSotW.Workload) {
			rej, err := envoyRejects(ctx, w.Envoy)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range rej {
				t.Errorf("%s: %s = %d", w.Name, k, v)
			}
		}
		mt, err := m.Mizzen.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := mt.Sum("pilot_total_xds_rejects"); v != 0 {
			t.Errorf("pilot_total_xds_rejects = %v", v)
		}
		for _, a := range agents {
			if a.Exited() {
				t.Errorf("%s: pilot-agent exited", a.Name)
			}
		}
	})
	t.Logf("TestAgentMesh took %s", time.Since(began).Round(time.Millisecond))
}

func agentMode(a *rig.Agent) string {
	if a.Delta {
		return "delta"
	}
	return "SotW"
}

const agentWebDR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
`

func agentWebVS(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - route:
    - {destination: {host: web, subset: v1}, weight: %d}
    - {destination: {host: web, subset: v2}, weight: %d}
`, v1, v2)
}

// routeWeights checks that Envoy's route config name has, for host, a
// weighted route to subsets v1 and v2 with these weights.
func routeWeights(ctx context.Context, e *rig.Envoy, name, host string, v1, v2 int) error {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return err
	}
	rc := d.RouteConfigs()[name]
	if rc == nil {
		return fmt.Errorf("no route config %q", name)
	}
	want := map[string]int{"outbound|80|v1|" + host: v1, "outbound|80|v2|" + host: v2}
	vhs, _ := rc["virtual_hosts"].([]any)
	for _, vh := range vhs {
		routes, _ := vh.(map[string]any)["routes"].([]any)
		for _, r := range routes {
			route, _ := r.(map[string]any)["route"].(map[string]any)
			wc, _ := route["weighted_clusters"].(map[string]any)
			cs, _ := wc["clusters"].([]any)
			got := map[string]int{}
			for _, c := range cs {
				cm, _ := c.(map[string]any)
				n, _ := cm["name"].(string)
				w, _ := cm["weight"].(float64)
				got[n] = int(w)
			}
			if len(got) == 2 && got["outbound|80|v1|"+host] == v1 && got["outbound|80|v2|"+host] == v2 {
				return nil
			}
		}
	}
	return fmt.Errorf("route %q has no weighted route %v", name, want)
}
