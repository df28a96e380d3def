package loadclient_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/internal/xdstest"
	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
)

// nodesOf runs a fleet against a test server and returns each proxy's node as
// the server saw it, by proxy index.
func nodesOf(t *testing.T, cfg loadclient.Config) []*core.Node {
	t.Helper()
	srv := xdstest.Start(t)
	srv.SetSnapshot(t, "1", 1)
	cfg.Addr = srv.Addr
	c, err := loadclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := c.WaitInitial(ctx, 5*time.Second); r.Converged != cfg.Proxies {
		t.Fatalf("converged %d, failed %v", r.Converged, r.Failed)
	}
	byID := map[string]*core.Node{}
	for _, r := range srv.Requests() {
		if n := r.GetNode(); n != nil {
			byID[n.GetId()] = n
		}
	}
	var out []*core.Node
	for _, st := range c.Status() {
		n := byID[st.ID]
		if n == nil {
			t.Fatalf("no request carried the node of %s", st.ID)
		}
		out = append(out, n)
	}
	return out
}

func labelsOf(n *core.Node) map[string]string {
	out := map[string]string{}
	for k, v := range n.GetMetadata().GetFields()["LABELS"].GetStructValue().GetFields() {
		out[k] = v.GetStringValue()
	}
	return out
}

// The sidecars look like the pods of a cluster: replicas of distinct
// Deployments, each with its own app/version and ReplicaSet hash, spread over
// namespaces; replicas of one workload share their labels.
func TestWorkloadLabels(t *testing.T) {
	nodes := nodesOf(t, loadclient.Config{Proxies: 6, Workloads: 3, Namespaces: 2, Namespace: "bench", WorkloadPrefix: "svc"})
	podName := regexp.MustCompile(`^sidecar~10\.1\.0\.\d+~(svc-\d)-([b-z2-9]{10})-[b-z2-9]{5}\.(bench(-1)?)~(bench(-1)?)\.svc\.cluster\.local$`)
	pods := map[string]bool{}
	for i, n := range nodes {
		w := i % 3
		wl := loadclient.WorkloadOf("svc", w, []string{"bench", "bench-1"})
		m := podName.FindStringSubmatch(n.GetId())
		if m == nil {
			t.Fatalf("proxy %d: node ID %q is not a pod of a ReplicaSet", i, n.GetId())
		}
		pods[n.GetId()] = true
		l := labelsOf(n)
		md := n.GetMetadata().GetFields()
		if m[1] != wl.Name || m[2] != wl.PodTemplateHash || m[3] != wl.Namespace || m[5] != wl.Namespace ||
			l["app"] != wl.Name || l["version"] != wl.Version || l["pod-template-hash"] != wl.PodTemplateHash ||
			l["service.istio.io/canonical-name"] != wl.Name || l["security.istio.io/tlsMode"] != "istio" ||
			md["NAMESPACE"].GetStringValue() != wl.Namespace || md["WORKLOAD_NAME"].GetStringValue() != wl.Name ||
			n.GetCluster() != wl.Name+"."+wl.Namespace {
			t.Errorf("proxy %d (workload %+v): node %q, labels %v, metadata %v", i, wl, n.GetId(), l, md)
		}
		if j := i - 3; j >= 0 {
			if lj := labelsOf(nodes[j]); lj["app"] != l["app"] || lj["pod-template-hash"] != l["pod-template-hash"] {
				t.Errorf("proxies %d and %d are replicas of workload %d but have labels %v and %v", j, i, w, lj, l)
			}
		}
	}
	if len(pods) != 6 {
		t.Errorf("pod names not unique: %v", pods)
	}
	if labelsOf(nodes[0])["pod-template-hash"] == labelsOf(nodes[1])["pod-template-hash"] {
		t.Error("two workloads share a pod-template-hash")
	}
	if labelsOf(nodes[0])["version"] != "v1" || labelsOf(nodes[1])["version"] != "v2" {
		t.Errorf("versions: %v, %v", labelsOf(nodes[0]), labelsOf(nodes[1]))
	}
}

// By default there are two replicas per workload, in one namespace.
func TestWorkloadDefaults(t *testing.T) {
	c, err := loadclient.New(loadclient.Config{Addr: "127.0.0.1:1", Proxies: 10})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.Config(); cfg.Workloads != 5 || cfg.Namespaces != 1 || cfg.WorkloadPrefix != "load" {
		t.Errorf("defaults: %+v", cfg)
	}
	if got := loadclient.NamespaceNames("bench", 3); len(got) != 3 || got[0] != "bench" || got[2] != "bench-2" {
		t.Errorf("NamespaceNames: %v", got)
	}
}

// SameLabels is the old fleet: every sidecar app=load, version=v1, pod load-<i>.
func TestSameLabels(t *testing.T) {
	nodes := nodesOf(t, loadclient.Config{Proxies: 2, SameLabels: true})
	for i, n := range nodes {
		if l := labelsOf(n); len(l) != 2 || l["app"] != "load" || l["version"] != "v1" {
			t.Errorf("proxy %d: labels %v", i, l)
		}
	}
	if want := "sidecar~10.1.0.2~load-1.default~default.svc.cluster.local"; nodes[1].GetId() != want {
		t.Errorf("ID %q, want %q", nodes[1].GetId(), want)
	}
}
