package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

const (
	// revocationInterval is mizzen's --identity-review-interval here.
	revocationInterval = 5 * time.Second
	// revocationCertTTL is --workload-cert-ttl (mizzen-bootstrapped sidecars
	// rotate at about half of it) and the agents' SECRET_TTL.
	revocationCertTTL = 10 * time.Second
	// apiserverCache is the kube-apiserver's cache of successful token
	// authentications (TokenSuccessCacheTTL, 10 s, no flag): TokenReview
	// keeps accepting a token that was accepted in the last 10 s even after
	// its service account or pod is gone.
	apiserverCache = 10 * time.Second
	// revocationBound is how soon after the deletion a stream must end: one
	// review interval after the apiserver stops accepting the token, plus a
	// few seconds of slack for a loaded 2-core machine.
	revocationBound = apiserverCache + revocationInterval + 5*time.Second
)

// TestRevocationEndsStreams (issue 13): identities are re-checked on open
// streams. Real sidecars (mizzen-bootstrapped Envoys with pod-bound tokens,
// getting certificates over SDS from mizzen; and a stock istio-agent, getting
// them from the CSR API) and a raw ADS client, with 10 s certificates and a
// 5 s review interval:
//
//	sa-victim     198.18.113.1   sidecar, service account doomed
//	agent-victim  198.18.113.2   istio-agent (delta), service account doomed
//	pod-victim    198.18.113.3   sidecar, service account kept: its Pod is deleted
//	control       198.18.113.4   sidecar, service account kept
//	raw client    (test)         SotW ADS stream, TokenRequest token of doomed
//
// Deleting ServiceAccount doomed, and the Pod of pod-victim (whose token is
// bound to it): every victim's stream ends within the bound (the raw
// client's with Unauthenticated), the revocations are counted, no victim is
// issued a certificate after the apiserver stopped accepting its token, and
// victims stay disconnected while control keeps its stream and rotates.
func TestRevocationEndsStreams(t *testing.T) {
	rig.IstioBinary(t, "pilot-agent")
	m := rig.StartMesh(t, rig.MeshOptions{MizzenArgs: []string{
		"--identity-review-interval", revocationInterval.String(), "--workload-cert-ttl", revocationCertTTL.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns = "revoke"
	workload := func(name, ip, sa string) *rig.Workload {
		sel := map[string]string{"app": name}
		m.AddService(t, rig.ServiceSpec{Name: name, Namespace: ns, Ports: []rig.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}, Selector: sel})
		return m.AddWorkload(t, rig.WorkloadSpec{Name: name, Namespace: ns, IP: ip, ServiceAccount: sa, Labels: sel,
			App: rig.AppSpec{Ports: []int{8080}}, Sidecar: true})
	}
	saVictim := workload("sa-victim", "198.18.113.1", "doomed")
	agentVictim := m.AddAgent(t, rig.AgentSpec{Name: "agent-victim", Namespace: ns, IP: "198.18.113.2", ServiceAccount: "doomed",
		Labels: map[string]string{"app": "agent-victim"}, SecretTTL: revocationCertTTL, App: rig.AppSpec{Ports: []int{8080}}})
	podVictim := workload("pod-victim", "198.18.113.3", "kept")
	control := workload("control", "198.18.113.4", "kept")
	raw := openRawSDS(ctx, t, m, ns, "doomed")

	proxies := map[string]struct {
		envoy *rig.Envoy
		id    string
	}{
		"sa-victim":    {saVictim.Envoy, saVictim.ProxyID},
		"agent-victim": {agentVictim.Envoy, agentVictim.ProxyID},
		"pod-victim":   {podVictim.Envoy, podVictim.ProxyID},
		"control":      {control.Envoy, control.ProxyID},
	}
	serial := func(name string) (*x509.Certificate, error) {
		s, err := envoySecrets(ctx, proxies[name].envoy)
		if err != nil {
			return nil, err
		}
		if s["default"].Cert == nil {
			return nil, fmt.Errorf("%s holds no default certificate", name)
		}
		return s["default"].Cert, nil
	}
	for name := range proxies {
		if err := rig.Eventually(ctx, 100*time.Millisecond, func(context.Context) error { _, err := serial(name); return err }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := rig.Eventually(ctx, 50*time.Millisecond, func(context.Context) error {
		if raw.certs() == 0 {
			return fmt.Errorf("no certificate yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("raw client: %v", err)
	}
	before := metricsOf(ctx, t, m.Mizzen)

	api := m.API.Clientset()
	deletedAt := time.Now()
	if err := api.CoreV1().ServiceAccounts(ns).Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	if err := api.CoreV1().Pods(ns).Delete(ctx, "pod-victim", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}

	t.Run("each victim's stream ends within the bound; the raw client's with Unauthenticated", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, name := range []string{"sa-victim", "agent-victim", "pod-victim"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bctx, bcancel := context.WithTimeout(ctx, revocationBound)
				defer bcancel()
				if err := rig.Eventually(bctx, 100*time.Millisecond, func(ctx context.Context) error {
					_, err := m.Mizzen.ProxySync(ctx, proxies[name].id)
					if err == nil {
						return fmt.Errorf("still connected to mizzen")
					}
					return nil
				}); err != nil {
					t.Errorf("%s: %v after %s", name, err, revocationBound)
					return
				}
				t.Logf("%s: stream gone from mizzen %s after the deletion", name, time.Since(deletedAt).Round(time.Millisecond))
			}()
		}
		wg.Wait()
		select {
		case err := <-raw.ended:
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("raw client's stream ended with %v, want Unauthenticated", err)
			}
			t.Logf("raw client: stream ended %s after the deletion: %v", time.Since(deletedAt).Round(time.Millisecond), err)
		case <-time.After(revocationBound - time.Since(deletedAt)):
			t.Errorf("raw client's stream still open %s after its service account was deleted", revocationBound)
		}
		after := metricsOf(ctx, t, m.Mizzen)
		if got := after.Sum("mizzen_xds_identity_revocations_total") - before.Sum("mizzen_xds_identity_revocations_total"); got < 4 {
			t.Errorf("mizzen_xds_identity_revocations_total grew by %v, want ≥ 4 (3 sidecars and the raw client)", got)
		}
	})

	t.Run("no certificate for a victim after the apiserver stopped accepting its token; control keeps rotating", func(t *testing.T) {
		// The apiserver accepts a token for up to 10 s after its last
		// acceptance; the agent's CSRs are also answered from mizzen's own
		// cache of accepted tokens (at most one review interval, 5 s here).
		lastIssue := deletedAt.Add(apiserverCache + time.Second)
		issued := func(c *x509.Certificate) time.Time { return c.NotAfter.Add(-revocationCertTTL) }
		held := map[string]*x509.Certificate{}
		for _, name := range []string{"sa-victim", "agent-victim", "pod-victim"} {
			c, err := serial(name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			limit := lastIssue
			if name == "agent-victim" {
				limit = limit.Add(revocationInterval)
			}
			if at := issued(c); at.After(limit) {
				t.Errorf("%s holds a certificate issued %s after the deletion", name, at.Sub(deletedAt).Round(time.Millisecond))
			}
			held[name] = c
		}
		if raw.lastCert().After(lastIssue) {
			t.Errorf("raw client got a certificate %s after the deletion", raw.lastCert().Sub(deletedAt).Round(time.Millisecond))
		}
		// Two of control's rotations: the victims' certificates stay as
		// they are, and no victim is back on mizzen.
		c0, err := serial("control")
		if err != nil {
			t.Fatal(err)
		}
		rotations := 0
		for last := c0; rotations < 2; {
			if err := rig.Eventually(ctx, 200*time.Millisecond, func(context.Context) error {
				c, err := serial("control")
				if err != nil {
					return err
				}
				if c.SerialNumber.Cmp(last.SerialNumber) == 0 {
					return fmt.Errorf("control's certificate not rotated")
				}
				last = c
				return nil
			}); err != nil {
				t.Fatalf("control: %v", err)
			}
			rotations++
		}
		for name, c := range held {
			now, err := serial(name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if now.SerialNumber.Cmp(c.SerialNumber) != 0 {
				t.Errorf("%s got a new certificate (issued %s after the deletion)", name, issued(now).Sub(deletedAt).Round(time.Millisecond))
			}
			if _, err := m.Mizzen.ProxySync(ctx, proxies[name].id); err == nil {
				t.Errorf("%s is connected to mizzen again", name)
			}
		}
		if _, err := m.Mizzen.ProxySync(ctx, control.ProxyID); err != nil {
			t.Errorf("control: %v", err)
		}
		t.Logf("control rotated twice in %s after the deletion; the victims kept their certificates", time.Since(deletedAt).Round(time.Millisecond))
	})
}

// rawSDS is an ADS stream of the test's own, subscribed to the SDS secrets,
// recording when each certificate arrives and how the stream ends.
type rawSDS struct {
	mu    sync.Mutex
	times []time.Time
	ended chan error
}

func (r *rawSDS) certs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.times)
}

func (r *rawSDS) lastCert() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.times) == 0 {
		return time.Time{}
	}
	return r.times[len(r.times)-1]
}

// openRawSDS opens a SotW ADS stream to mizzen's secure port with a
// TokenRequest token of ns/sa (not bound to a pod) and asks for the secrets.
func openRawSDS(ctx context.Context, t *testing.T, m *rig.Mesh, ns, sa string) *rawSDS {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(publishedRoot(ctx, t, m.API, ns)))
	conn, err := grpc.NewClient(m.SecureXDSAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(withToken(ctx, requestToken(ctx, t, m.API, ns, sa, "istio-ca")))
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discovery.DiscoveryRequest{Node: sdsNode(ns, sa), TypeUrl: resourcev3.SecretType, ResourceNames: []string{"default", "ROOTCA"}}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	r := &rawSDS{ended: make(chan error, 1)}
	go func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				r.ended <- err
				return
			}
			for _, a := range resp.GetResources() {
				s := &tlsv3.Secret{}
				if a.UnmarshalTo(s) == nil && s.GetName() == "default" {
					r.mu.Lock()
					r.times = append(r.times, time.Now())
					r.mu.Unlock()
				}
			}
			_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: req.ResourceNames,
				VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
		}
	}()
	return r
}
