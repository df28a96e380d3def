package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
	"github.com/mizzenmesh/mizzen/pkg/explain"
)

// sidecarSerial is the serial number of the workload certificate an Envoy
// holds (admin /certs: the SDS secret "default"), "" if none yet.
func sidecarSerial(ctx context.Context, e *rig.Envoy) (string, error) {
	b, err := e.Admin(ctx, "/certs")
	if err != nil {
		return "", err
	}
	var certs struct {
		Certificates []struct {
			CertChain []struct {
				SerialNumber    string `json:"serial_number"`
				SubjectAltNames []struct {
					URI string `json:"uri"`
				} `json:"subject_alt_names"`
			} `json:"cert_chain"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(b, &certs); err != nil {
		return "", err
	}
	for _, c := range certs.Certificates {
		for _, cc := range c.CertChain {
			for _, san := range cc.SubjectAltNames {
				if strings.HasPrefix(san.URI, "spiffe://") {
					return cc.SerialNumber, nil
				}
			}
		}
	}
	return "", nil
}

// TestMeshCertRotation: with 2-minute certificates, both sidecars get new
// ones (new serial numbers) on their open xDS streams while a client keeps
// calling the server over STRICT mTLS, and not one request fails.
func TestMeshCertRotation(t *testing.T) {
	m := rig.StartMesh(t, rig.MeshOptions{MizzenArgs: []string{"--workload-cert-ttl", "2m"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sel := map[string]string{"app": "server"}
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: sel})
	server := m.AddWorkload(t, rig.WorkloadSpec{Name: "server", IP: "198.18.13.1", ServiceAccount: "server", Labels: sel,
		App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.13.10", ServiceAccount: "client",
		Labels: map[string]string{"app": "client"}, Sidecar: true})
	m.API.Apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
`)
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+web.Hostname, server.IP+":8080", true)

	first := map[string]string{}
	for _, w := range []*rig.Workload{server, client} {
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
			s, err := sidecarSerial(ctx, w.Envoy)
			if err == nil && s == "" {
				err = fmt.Errorf("no workload certificate yet")
			}
			first[w.Name] = s
			return err
		}); err != nil {
			t.Fatalf("%s: %v", w.Name, err)
		}
	}
	t.Logf("initial serials: %v", first)
	// mTLS works before the loop starts (STRICT: nothing else gets through).
	if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		st, r, err := client.Echo(ctx, "GET", web.URL("/"), nil)
		if err != nil || st != 200 || !strings.Contains(r.Header("x-forwarded-client-cert"), "sa/client") {
			return fmt.Errorf("status %d, err %v", st, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("STRICT mTLS before rotation: %v", err)
	}

	start := time.Now()
	total, failed := 0, 0
	rotated := map[string]string{}
	for len(rotated) < 2 {
		if time.Since(start) > 100*time.Second {
			t.Fatalf("after %s only %v rotated (first %v)", time.Since(start).Round(time.Second), rotated, first)
		}
		res, err := client.Load(ctx, rig.LoadSpec{URL: web.URL("/"), N: 20, Concurrency: 2, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		total += len(res.Records)
		failed += res.Non2xx()
		for _, w := range []*rig.Workload{server, client} {
			if s, err := sidecarSerial(ctx, w.Envoy); err == nil && s != "" && s != first[w.Name] && rotated[w.Name] == "" {
				rotated[w.Name] = s
				t.Logf("%s rotated after %s: serial %s → %s", w.Name, time.Since(start).Round(time.Second), first[w.Name], s)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Keep calling a little after the last rotation: old connections drain.
	for i := 0; i < 10; i++ {
		res, err := client.Load(ctx, rig.LoadSpec{URL: web.URL("/"), N: 20, Concurrency: 2, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		total += len(res.Records)
		failed += res.Non2xx()
	}
	t.Logf("%d requests during rotation, %d failed", total, failed)
	if failed != 0 {
		t.Errorf("%d of %d requests failed during rotation, want 0", failed, total)
	}
	ms, err := m.Mizzen.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ms.Sum("mizzen_workload_cert_rotations_total") < 2 {
		t.Errorf("mizzen_workload_cert_rotations_total = %v, want ≥ 2", ms.Sum("mizzen_workload_cert_rotations_total"))
	}
}

// TestMeshTutorialPolicies: the AuthorizationPolicies Istio's tutorials write,
// with STRICT mTLS, enforced by real sidecars.
//
//	server  198.18.14.1  HTTP 8080 (Service web :80), gRPC 7070 (Service grpc :7070)
//	sleep   198.18.14.10 service account sleep
//	other   198.18.14.11 service account other
func TestMeshTutorialPolicies(t *testing.T) {
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sel := map[string]string{"app": "server"}
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: sel})
	grpcSvc := m.AddService(t, rig.ServiceSpec{Name: "grpc", Ports: []rig.ServicePort{{Name: "grpc", Port: 7070}}, Selector: sel})
	server := m.AddWorkload(t, rig.WorkloadSpec{Name: "server", IP: "198.18.14.1", ServiceAccount: "server", Labels: sel,
		App: rig.AppSpec{Ports: []int{8080}, GRPCPorts: []int{7070}}, Sidecar: true})
	sleep := m.AddWorkload(t, rig.WorkloadSpec{Name: "sleep", IP: "198.18.14.10", ServiceAccount: "sleep",
		Labels: map[string]string{"app": "sleep"}, Sidecar: true})
	other := m.AddWorkload(t, rig.WorkloadSpec{Name: "other", IP: "198.18.14.11", ServiceAccount: "other",
		Labels: map[string]string{"app": "other"}, Sidecar: true})
	for _, w := range []*rig.Workload{sleep, other} {
		waitForEndpoint(t, ctx, w.Envoy, "outbound|80||"+web.Hostname, server.IP+":8080", true)
		waitForEndpoint(t, ctx, w.Envoy, "outbound|7070||"+grpcSvc.Hostname, server.IP+":7070", true)
	}
	key := newTestJWTKey(t)
	const issuer = "testing@secure.mizzen.io"
	m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  jwtRules:
  - issuer: %s
    jwks: '%s'
`, issuer, key.jwks()))
	token := key.token(t, map[string]any{"iss": issuer, "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})

	type call struct {
		from    *rig.Workload
		method  string
		url     string
		headers map[string]string
		want    int // 200, 403; for grpc:// 200 is OK and 0 a refused call
	}
	do := func(c call) (int, string) {
		if strings.HasPrefix(c.url, "grpc://") {
			res, err := c.from.Load(ctx, rig.LoadSpec{URL: c.url, N: 1, Timeout: 3 * time.Second})
			if err != nil || len(res.Records) != 1 {
				return -1, fmt.Sprint(err)
			}
			return res.Records[0].Status, res.Records[0].Error
		}
		st, _, body, err := c.from.HTTP(ctx, c.method, c.url, c.headers)
		if err != nil {
			return -1, err.Error()
		}
		return st, strings.TrimSpace(string(body))
	}
	expect := func(t *testing.T, calls ...call) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var bad []string
			for _, c := range calls {
				got, body := do(c)
				if got != c.want {
					bad = append(bad, fmt.Sprintf("%s %s %s: %d %q, want %d", c.from.Name, c.method, c.url, got, body, c.want))
				} else if got == 403 && body != "RBAC: access denied" {
					bad = append(bad, fmt.Sprintf("%s %s %s: 403 body %q", c.from.Name, c.method, c.url, body))
				}
			}
			if len(bad) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("calls not as expected:\n%s", strings.Join(bad, "\n"))
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// policy applies an AuthorizationPolicy for one subtest: it is deleted
	// when the subtest ends, so the next starts without it.
	policy := func(t *testing.T, yaml string) {
		t.Helper()
		m.API.Apply(t, yaml)
		t.Cleanup(func() { m.API.Delete(t, yaml) })
	}
	grpcURL := "grpc://" + grpcSvc.ClusterIP + ":7070"
	bearer := map[string]string{"Authorization": "Bearer " + token}

	t.Run("DENY notRequestPrincipals *: no token 403, a valid token passes", func(t *testing.T) {
		policy(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
`)
		expect(t,
			call{from: sleep, method: "GET", url: web.URL("/headers"), want: 403},
			call{from: sleep, method: "GET", url: web.URL("/headers"), headers: bearer, want: 200})
	})

	t.Run("ALLOW gRPC paths + POST + port: the gRPC call passes, anything else 403", func(t *testing.T) {
		policy(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: grpc-health, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - to:
    - operation:
        paths: ["/grpc.health.v1.Health/Check"]
        methods: ["POST"]
        ports: ["7070"]
`)
		expect(t,
			call{from: sleep, url: grpcURL, want: 200},
			call{from: sleep, method: "POST", url: web.URL("/grpc.health.v1.Health/Check"), want: 403}, // right path and method, wrong port
			call{from: sleep, method: "GET", url: web.URL("/"), want: 403})
	})

	t.Run("ALLOW principal + POST + path prefix: only that caller passes", func(t *testing.T) {
		policy(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: sleep-posts, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/api/*"]}}]
`)
		expect(t,
			call{from: sleep, method: "POST", url: web.URL("/api/orders"), want: 200},
			call{from: other, method: "POST", url: web.URL("/api/orders"), want: 403},
			call{from: sleep, method: "GET", url: web.URL("/api/orders"), want: 403},
			call{from: sleep, method: "POST", url: web.URL("/admin"), want: 403})
	})

	// Istio keeps a rule whose path has "*" inside and matches that "*"
	// literally: "/api/v*/payments*" is the prefix "/api/v*/payments". Path
	// templates ({*} one segment, {**} the rest) are Envoy's uri_template.
	// `mizzen explain` must agree with Envoy on the principal (spiffe://).
	t.Run("ALLOW principal + /api/v*/payments*: the inner * is literal, as in Istio; path templates", func(t *testing.T) {
		policy(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: payments, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/api/v*/payments*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/items/{*}/detail", "/static/{**}"]}}]
`)
		expect(t,
			call{from: sleep, method: "POST", url: web.URL("/api/v*/payments"), want: 200},
			call{from: sleep, method: "POST", url: web.URL("/api/v*/payments/42"), want: 200},
			call{from: sleep, method: "POST", url: web.URL("/api/v1/payments"), want: 403},
			call{from: other, method: "POST", url: web.URL("/api/v*/payments"), want: 403},
			call{from: sleep, method: "GET", url: web.URL("/items/42/detail"), want: 200},
			call{from: sleep, method: "GET", url: web.URL("/items/4/2/detail"), want: 403},
			call{from: sleep, method: "GET", url: web.URL("/static/css/site.css"), want: 200},
			call{from: sleep, method: "GET", url: web.URL("/static"), want: 403})
		for _, c := range []struct {
			from, method, path, want string
		}{
			{"sleep.default", "POST", "/api/v*/payments", "ALLOWED"},
			{"sleep.default", "POST", "/api/v1/payments", "DENIED"},
			{"other.default", "POST", "/api/v*/payments", "DENIED"},
			{"sleep.default", "GET", "/items/42/detail", "ALLOWED"},
		} {
			args := []string{"explain", "--from", c.from, "-X", c.method, "--monitoring-addr", m.Mizzen.MonitoringAddr, "-o", "json", "http://web" + c.path}
			out, err := exec.CommandContext(ctx, rig.MizzenBinary(t), args...).Output()
			if err != nil {
				t.Fatalf("mizzen %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			var tr explain.Trace
			if err := json.Unmarshal(out, &tr); err != nil {
				t.Fatalf("explain output: %v\n%s", err, out)
			}
			if tr.Decision != c.want {
				t.Errorf("explain --from %s %s %s: %s (policy %q), Envoy: %s", c.from, c.method, c.path, tr.Decision, tr.Policy, c.want)
			}
		}
	})
}
