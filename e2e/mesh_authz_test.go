package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestMeshAuthorization: AuthorizationPolicies enforced by real sidecars.
// Principals need the security work's mTLS certificates, so this exercises the
// attributes that work on plaintext: paths, methods, ports, headers, ipBlocks,
// a TCP port, Istio's DENY-before-ALLOW order and the deny-all ALLOW policy.
//
//	server   198.18.9.1  HTTP 8080 (Service web :80), TCP echo 9000 (Service tcp :9000)
//	client   198.18.9.10 sidecar
//	other    198.18.9.11 sidecar
func TestMeshAuthorization(t *testing.T) {
	m := rig.StartMesh(t, rig.MeshOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sel := map[string]string{"app": "server"}
	web := m.AddService(t, rig.ServiceSpec{Name: "web", Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: sel})
	tcp := m.AddService(t, rig.ServiceSpec{Name: "tcp", Ports: []rig.ServicePort{{Name: "tcp-echo", Port: 9000}}, Selector: sel})
	server := m.AddWorkload(t, rig.WorkloadSpec{Name: "server", IP: "198.18.9.1", Labels: sel,
		App: rig.AppSpec{Ports: []int{8080}, TCPPorts: []int{9000}}, Sidecar: true})
	client := m.AddWorkload(t, rig.WorkloadSpec{Name: "client", IP: "198.18.9.10", Labels: map[string]string{"app": "client"}, Sidecar: true})
	other := m.AddWorkload(t, rig.WorkloadSpec{Name: "other", IP: "198.18.9.11", Labels: map[string]string{"app": "other"}, Sidecar: true})
	waitForEndpoint(t, ctx, client.Envoy, "outbound|80||"+web.Hostname, server.IP+":8080", true)
	waitForEndpoint(t, ctx, other.Envoy, "outbound|9000||"+tcp.Hostname, server.IP+":9000", true)

	type call struct {
		from    *rig.Workload
		method  string
		path    string
		headers map[string]string
		want    int // 0: a TCP call that must fail
	}
	do := func(c call) (int, string) {
		if c.path == "tcp" {
			res, err := c.from.Load(ctx, rig.LoadSpec{URL: "tcp://" + tcp.ClusterIP + ":9000", N: 1, Timeout: 2 * time.Second})
			if err != nil || len(res.Records) != 1 {
				return -1, fmt.Sprint(err)
			}
			return res.Records[0].Status, ""
		}
		status, _, body, err := c.from.HTTP(ctx, c.method, web.URL(c.path), c.headers)
		if err != nil {
			return -1, err.Error()
		}
		return status, string(body)
	}
	// expect waits for the policy to reach the server's sidecar, then checks all calls.
	expect := func(t *testing.T, calls ...call) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var bad []string
			for _, c := range calls {
				got, body := do(c)
				want := c.want // 0 for TCP: refused, no greeting
				if got != want {
					bad = append(bad, fmt.Sprintf("%s %s %s %v: %d %q, want %d", c.from.Name, c.method, c.path, c.headers, got, body, want))
				} else if got == 403 && strings.TrimSpace(body) != "RBAC: access denied" {
					bad = append(bad, fmt.Sprintf("%s %s %s: 403 body %q, want RBAC: access denied", c.from.Name, c.method, c.path, body))
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

	denyAdmin := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
`
	allowClient := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {ipBlocks: ["198.18.9.10/32"]}}]
    to: [{operation: {methods: [GET], ports: ["8080"]}}]
    when: [{key: "request.headers[x-user]", values: ["alice", "bob*"]}]
`

	t.Run("no policy: everything passes", func(t *testing.T) {
		expect(t, call{from: client, method: "GET", path: "/hello", want: 200}, call{from: other, path: "tcp", want: 200})
	})

	t.Run("DENY by path", func(t *testing.T) {
		m.API.Apply(t, denyAdmin)
		expect(t,
			call{from: client, method: "GET", path: "/admin/users", want: 403},
			call{from: client, method: "GET", path: "/hello", want: 200},
			// HTTP-only field on the TCP port: the DENY rule applies without it.
			call{from: other, path: "tcp", want: 0})
	})

	t.Run("ALLOW by method, port, header and source IP", func(t *testing.T) {
		m.API.Apply(t, allowClient)
		m.API.Delete(t, denyAdmin)
		expect(t,
			call{from: client, method: "GET", path: "/hello", headers: map[string]string{"x-user": "alice"}, want: 200},
			call{from: client, method: "GET", path: "/hello", headers: map[string]string{"x-user": "bobby"}, want: 200},
			call{from: client, method: "GET", path: "/hello", want: 403},
			call{from: client, method: "POST", path: "/hello", headers: map[string]string{"x-user": "alice"}, want: 403},
			call{from: other, method: "GET", path: "/hello", headers: map[string]string{"x-user": "alice"}, want: 403},
			// Any ALLOW policy makes the rest denied: the TCP port too.
			call{from: other, path: "tcp", want: 0})
	})

	t.Run("ALLOW without rules denies all", func(t *testing.T) {
		m.API.Delete(t, allowClient)
		m.API.Apply(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
`)
		expect(t, call{from: client, method: "GET", path: "/hello", headers: map[string]string{"x-user": "alice"}, want: 403},
			call{from: client, path: "tcp", want: 0})
	})

	t.Run("requestPrincipals: no token 403, valid token 200, bad token 401", func(t *testing.T) {
		m.API.Delete(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
`)
		key := newTestJWTKey(t)
		const issuer = "https://issuer.example.com/tenant"
		m.API.Apply(t, fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  jwtRules:
  - issuer: %q
    jwks: '%s'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["%s/alice"]}}]
`, issuer, key.jwks(), issuer))
		exp := time.Now().Add(time.Hour).Unix()
		alice := key.token(t, map[string]any{"iss": issuer, "sub": "alice", "exp": exp})
		bob := key.token(t, map[string]any{"iss": issuer, "sub": "bob", "exp": exp})
		expect(t,
			call{from: client, method: "GET", path: "/hello", want: 403},
			call{from: client, method: "GET", path: "/hello", headers: map[string]string{"Authorization": "Bearer " + alice}, want: 200},
			call{from: client, method: "GET", path: "/hello", headers: map[string]string{"Authorization": "Bearer " + bob}, want: 403},
			call{from: client, method: "GET", path: "/hello", headers: map[string]string{"Authorization": "Bearer abcd"}, want: 401})
	})
}
