package loadclient_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/internal/xdstest"
	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
)

func startClient(t *testing.T, addr string, n int) *loadclient.Client {
	t.Helper()
	return startClientMode(t, addr, n, "sotw")
}

// modes are the client's protocols and transports: state of the world,
// delta on the lean HTTP/2 transport (a connection per proxy, h2stream.go)
// and delta on gRPC's client (two connections shared by the proxies).
var modes = []string{"sotw", "delta", "delta-grpc"}

func startClientMode(t *testing.T, addr string, n int, mode string) *loadclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cfg := loadclient.Config{Addr: addr, Proxies: n, Delta: mode != "sotw"}
	if mode != "delta" {
		cfg.Conns = 2
	}
	c, err := loadclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); cancel() })
	return c
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConvergenceAgainstGoControlPlane(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testConvergenceAgainstGoControlPlane(t, mode) })
	}
}

func testConvergenceAgainstGoControlPlane(t *testing.T, mode string) {
	delta := mode != "sotw"
	srv := xdstest.Start(t)
	srv.SetSnapshot(t, "1", 2)
	const n = 5
	c := startClientMode(t, srv.Addr, n, mode)

	ctx := context.Background()
	init := c.WaitInitial(ctx, 5*time.Second)
	if init.Converged != n || len(init.Failed) != 0 {
		t.Fatalf("initial: converged %d of %d, failed %v", init.Converged, n, init.Failed)
	}
	if len(init.PerProxy) != n || init.All <= 0 {
		t.Fatalf("initial timings: all %v, per proxy %v", init.All, init.PerProxy)
	}
	wantEDS := []string{xdstest.EDSName(0), xdstest.EDSName(1)}
	slices.Sort(wantEDS)
	for _, st := range c.Status() {
		if !strings.HasPrefix(st.ID, "sidecar~10.1.0.") || !strings.HasSuffix(st.ID, ".default~default.svc.cluster.local") {
			t.Errorf("node ID %q", st.ID)
		}
		for _, typ := range loadclient.Types {
			ts := st.Types[typ]
			if ts.Acks == 0 || (!delta && ts.Version != "1") {
				t.Errorf("%s: %s acks %d version %q, want version 1 ACKed", st.ID, loadclient.ShortType(typ), ts.Acks, ts.Version)
			}
		}
		if got := st.Types[loadclient.TypeEDS].Names; !slices.Equal(got, wantEDS) {
			t.Errorf("%s: EDS names %v, want %v", st.ID, got, wantEDS)
		}
		if got := st.Types[loadclient.TypeRDS].Names; !slices.Equal(got, []string{xdstest.RouteName}) {
			t.Errorf("%s: RDS names %v, want [80]", st.ID, got)
		}
		if st.FullConfigAt.IsZero() {
			t.Errorf("%s: no full config time", st.ID)
		}
	}

	// A new version with a third cluster: every proxy must ACK it, and then
	// subscribe to the third cluster's endpoints.
	res, err := c.MeasureChange(ctx, func(context.Context) error {
		srv.SetSnapshot(t, "2", 3)
		return nil
	}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Converged != n || len(res.Failed) != 0 || len(res.PerProxy) != n {
		t.Fatalf("change: converged %d of %d, failed %v", res.Converged, n, res.Failed)
	}
	if res.AllAcked <= 0 || res.AllAcked > 5*time.Second {
		t.Fatalf("change: all acked after %v", res.AllAcked)
	}
	waitFor(t, "EDS of the third cluster", func() bool {
		for _, st := range c.Status() {
			eds := st.Types[loadclient.TypeEDS]
			if len(eds.Names) != 3 || (!delta && eds.Version != "2") || (delta && eds.Held != 3) {
				return false
			}
		}
		return true
	})

	// Nothing changes: every proxy is reported as not converged.
	res, err = c.MeasureChange(ctx, func(context.Context) error { return nil }, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Converged != 0 || len(res.Failed) != n {
		t.Fatalf("no-op change: converged %d, failed %v", res.Converged, res.Failed)
	}

	if delta {
		checkDeltaRequests(t, srv.DeltaRequests(), n)
		if len(srv.Requests()) != 0 {
			t.Errorf("delta proxies sent %d SotW requests", len(srv.Requests()))
		}
	} else {
		checkSotWRequests(t, srv.Requests())
	}
	cnt := c.Counters()
	if cnt.Responses < 4*n || cnt.Bytes == 0 || cnt.Acks != cnt.Responses || cnt.DecodeErrors != 0 {
		t.Errorf("counters %+v", cnt)
	}
}

// checkDeltaRequests: every stream starts with wildcard CDS and LDS requests
// (go-control-plane's delta server copies the node into every request it hands
// the callbacks, so where the node was sent is not checked here); EDS is subscribed by name; every response
// is ACKed by nonce alone, never NACKed.
func checkDeltaRequests(t *testing.T, reqs []*discovery.DeltaDiscoveryRequest, n int) {
	t.Helper()
	var edsSubs, acks int
	wildcard := map[string]int{}
	for _, r := range reqs {
		if r.GetErrorDetail() != nil {
			t.Errorf("NACK: %v", r)
		}
		switch {
		case r.GetResponseNonce() != "":
			acks++
			if len(r.GetResourceNamesSubscribe())+len(r.GetResourceNamesUnsubscribe()) > 0 {
				t.Errorf("ACK carrying a subscription change: %v", r)
			}
		case len(r.GetResourceNamesSubscribe()) == 0 && len(r.GetResourceNamesUnsubscribe()) == 0:
			wildcard[loadclient.ShortType(r.GetTypeUrl())]++
		case r.GetTypeUrl() == loadclient.TypeEDS:
			edsSubs++
		}
	}
	if wildcard["CDS"] != n || wildcard["LDS"] != n || len(wildcard) != 2 {
		t.Errorf("wildcard requests %v; want CDS and LDS %d each", wildcard, n)
	}
	// Each proxy subscribes the first two clusters, then the third.
	if edsSubs != 2*n || acks == 0 {
		t.Errorf("%d EDS subscriptions (want %d), %d ACKs", edsSubs, 2*n, acks)
	}
}

// checkSotWRequests: the server saw only ACKs (no NACK), EDS subscriptions by
// name, and ACKs carrying the versions it sent.
func checkSotWRequests(t *testing.T, reqs []*discovery.DiscoveryRequest) {
	t.Helper()
	var sawEDSRequest, sawAck bool
	for _, r := range reqs {
		if r.GetErrorDetail() != nil {
			t.Errorf("NACK: %v", r)
		}
		if r.GetTypeUrl() == loadclient.TypeEDS && len(r.GetResourceNames()) > 0 {
			sawEDSRequest = true
		}
		if r.GetResponseNonce() != "" && r.GetVersionInfo() == "2" {
			sawAck = true
		}
	}
	if !sawEDSRequest || !sawAck {
		t.Errorf("requests: EDS subscription %v, ACK of version 2 %v", sawEDSRequest, sawAck)
	}
}

func TestRouterNodes(t *testing.T) {
	srv := xdstest.Start(t)
	srv.SetSnapshot(t, "1", 1)
	c, err := loadclient.New(loadclient.Config{Addr: srv.Addr, Proxies: 2, Router: true, Namespace: "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := c.WaitInitial(ctx, 5*time.Second); r.Converged != 2 {
		t.Fatalf("converged %d, failed %v", r.Converged, r.Failed)
	}
	st := c.Status()
	if want := "router~10.1.0.2~load-1.istio-system~istio-system.svc.cluster.local"; st[1].ID != want {
		t.Errorf("ID %q, want %q", st[1].ID, want)
	}
	var node bool
	for _, r := range srv.Requests() {
		if n := r.GetNode(); n != nil && n.GetId() == st[0].ID {
			node = true
			md := n.GetMetadata().GetFields()
			if md["LABELS"].GetStructValue().GetFields()["istio"].GetStringValue() != "ingressgateway" ||
				md["NAMESPACE"].GetStringValue() != "istio-system" || md["CLUSTER_ID"].GetStringValue() != "Kubernetes" ||
				md["INSTANCE_IPS"].GetStringValue() != "10.1.0.1" || md["SERVICE_ACCOUNT"].GetStringValue() != "default" {
				t.Errorf("metadata %v", md)
			}
		}
	}
	if !node {
		t.Error("no request carried the node")
	}
	c.Close()
	c.Close() // idempotent
}

func TestInitialTimeoutReportsFailures(t *testing.T) {
	srv := xdstest.Start(t) // no snapshot: nothing is ever answered
	c := startClient(t, srv.Addr, 3)
	r := c.WaitInitial(context.Background(), 200*time.Millisecond)
	if r.Converged != 0 || len(r.Failed) != 3 {
		t.Fatalf("converged %d, failed %v", r.Converged, r.Failed)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := loadclient.Percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := loadclient.Percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := loadclient.Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("single: %v", got)
	}
}
