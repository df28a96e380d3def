package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestHAReplicas: two replicas against one apiserver agree on one root CA and
// both serve; one holds the Lease and does the singleton work. Killing it
// (SIGKILL: no lease release) hands the Lease to the other within 15 s, and
// proxies that were on the dead replica resync from the live one within 5 s.
func TestHAReplicas(t *testing.T) {
	api := rig.StartAPIServer(t)
	api.Apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
`)
	a := rig.StartMizzen(t, "--kubeconfig", api.Kubeconfig)
	b := rig.StartMizzen(t, "--kubeconfig", api.Kubeconfig)
	replicas := map[string]*rig.Mizzen{"a": a, "b": b}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// One root: both replicas sign with the CA in istio-ca-secret.
	secret, err := api.Clientset().CoreV1().Secrets("istio-system").Get(ctx, "istio-ca-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range replicas {
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(context.Context) error {
			return servedByRoot(t, m.SecureXDSAddr, string(secret.Data["ca-cert.pem"]))
		}); err != nil {
			t.Fatalf("replica %s does not sign with the root in istio-ca-secret: %v", name, err)
		}
	}

	leaderOf := func(ctx context.Context) (string, error) {
		var leaders []string
		for name, m := range replicas {
			if m.Exited() {
				continue
			}
			ms, err := m.Metrics(ctx)
			if err != nil {
				return "", err
			}
			if ms.Sum("mizzen_leader") == 1 {
				leaders = append(leaders, name)
			}
		}
		if len(leaders) != 1 {
			return "", fmt.Errorf("leaders: %v, want exactly one", leaders)
		}
		return leaders[0], nil
	}
	var leader string
	if err := rig.Eventually(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		leader, err = leaderOf(ctx)
		return err
	}); err != nil {
		t.Fatalf("no single leader: %v", err)
	}
	other := map[string]string{"a": "b", "b": "a"}[leader]
	t.Logf("replica %s leads", leader)

	// Both serve: proxies on the leader first, the other replica as failover
	// (like Envoy behind the istiod Service); a control fleet on the other.
	const n = 20
	fleet, err := loadclient.New(loadclient.Config{Addr: replicas[leader].XDSAddr, Failover: []string{replicas[other].XDSAddr},
		Proxies: n, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	control, err := loadclient.New(loadclient.Config{Addr: replicas[other].XDSAddr, Proxies: 2, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if err := control.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	for name, c := range map[string]*loadclient.Client{"fleet": fleet, "control": control} {
		if res := c.WaitInitial(ctx, 30*time.Second); len(res.Failed) > 0 {
			t.Fatalf("%s: %d proxies without initial config: %v", name, len(res.Failed), res.Failed)
		}
	}
	if got := connectedTo(ctx, t, replicas[leader]); got != n {
		t.Fatalf("leader has %d proxies connected, want %d", got, n)
	}

	killedAt := time.Now()
	replicas[leader].Kill()
	t.Logf("killed replica %s", leader)

	if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		l, err := leaderOf(ctx)
		if err != nil {
			return err
		}
		if l != other {
			return fmt.Errorf("leader is %s", l)
		}
		return nil
	}); err != nil {
		t.Fatalf("the lease did not move: %v", err)
	}
	takeover := time.Since(killedAt)
	t.Logf("replica %s took the lease %s after the kill", other, takeover.Round(time.Millisecond))
	if takeover > 15*time.Second {
		t.Errorf("lease takeover took %s, want ≤ 15 s", takeover)
	}

	// Resynced: every proxy opened a new stream and ACKed all four types on it.
	var resync time.Duration
	deadline := time.Now().Add(20 * time.Second)
	for {
		resync = 0
		pending := 0
		for _, st := range fleet.Status() {
			done := st.Streams >= 2
			var last time.Time
			for _, typ := range []string{loadclient.TypeCDS, loadclient.TypeEDS, loadclient.TypeLDS, loadclient.TypeRDS} {
				at := st.Types[typ].LastAckAt
				if at.Before(killedAt) {
					done = false
				}
				if at.After(last) {
					last = at
				}
			}
			if !done {
				pending++
				continue
			}
			resync = max(resync, last.Sub(killedAt))
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d proxies did not resync from replica %s within 20 s", pending, n, other)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("all %d proxies resynced from replica %s %s after the kill", n, other, resync.Round(time.Millisecond))
	if resync > 5*time.Second {
		t.Errorf("resync took %s, want ≤ 5 s", resync)
	}
	if got := connectedTo(ctx, t, replicas[other]); got != n+2 {
		t.Errorf("replica %s has %d proxies, want %d", other, got, n+2)
	}
}

func connectedTo(ctx context.Context, t *testing.T, m *rig.Mizzen) int {
	t.Helper()
	st, err := m.SyncStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(st)
}

// servedByRoot: the replica's serving certificate on the secure port (issued
// by the CA it loaded) verifies against rootPEM.
func servedByRoot(t *testing.T, addr, rootPEM string) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(rootPEM))
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"},
	})
	if err != nil {
		return err
	}
	return conn.Close()
}
