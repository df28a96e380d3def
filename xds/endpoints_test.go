package xds

import (
	"testing"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// An endpoint-only change keeps every other service's marshalled load
// assignments (the same items) and rebuilds only the changed service's.
func TestEndpointChangeKeepsOtherServicesItems(t *testing.T) {
	const n, proxies = 20, 5
	prev, err := newGeneration(model.Build(benchMesh(n, proxies, ""), 1), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := newGeneration(model.Build(benchMesh(n, proxies, "10.201.0.1"), 2), prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !next.endpointOnly(prev) {
		t.Fatal("an endpoint change is not endpoint-only")
	}
	before, _ := prev.scopeEndpoints(model.Scope{})
	after, _ := next.scopeEndpoints(model.Scope{})
	if len(before.items) != n || len(after.items) != n {
		t.Fatalf("items: %d before, %d after, want %d", len(before.items), len(after.items), n)
	}
	for _, it := range after.items {
		old := before.byName[it.name]
		changed := it.name == "outbound|8080||svc-0.default.svc.cluster.local"
		if same := old == it; same == changed {
			t.Errorf("%s: item shared=%v, want %v", it.name, same, !changed)
		}
	}
	if got := after.changedSince(before); len(got) != 1 || got[0].name != "outbound|8080||svc-0.default.svc.cluster.local" {
		t.Errorf("changed: %v", names(got))
	}
	// The generation before prev is forgotten: prev gave its parts away.
	if prev.prevEndpoints != nil {
		t.Error("prev still holds its predecessor's parts")
	}
}

// A proxy's inbound side is kept across endpoint changes elsewhere, and
// rebuilt when an endpoint at its own address changes.
func TestInboundFollowsOwnEndpoints(t *testing.T) {
	const n, proxies = 5, 3
	in1 := benchMesh(n, proxies, "")
	g1, err := newGeneration(model.Build(in1, 1), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := workload(1) // serves svc-1 on 8080
	_, ib1, err := g1.build(p, nil, [numTypes]*resourceSet{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ib1.listeners.items) == 0 || ib1.key == "" {
		t.Fatalf("proxy has no inbound side: %+v", ib1)
	}

	// Elsewhere: kept as is.
	g2, err := newGeneration(model.Build(benchMesh(n, proxies, "10.201.0.1"), 2), g1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ib2, err := g2.build(p, ib1, [numTypes]*resourceSet{})
	if err != nil {
		t.Fatal(err)
	}
	if ib2.clusters != ib1.clusters || ib2.listeners != ib1.listeners {
		t.Error("inbound rebuilt after an endpoint change elsewhere")
	}

	// Its own: svc-1's endpoints (the proxy's among them) move to port 9090.
	in3 := benchMesh(n, proxies, "10.201.0.1")
	port := int32(9090)
	in3.EndpointSlices[1].Ports[0].Port = &port
	g3, err := newGeneration(model.Build(in3, 3), g2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !g3.endpointOnly(g2) {
		t.Fatal("an EndpointSlice change is not endpoint-only")
	}
	_, ib3, err := g3.build(p, ib2, [numTypes]*resourceSet{})
	if err != nil {
		t.Fatal(err)
	}
	if ib3.key == ib2.key {
		t.Errorf("inbound key unchanged after the proxy's own endpoint moved: %q", ib3.key)
	}
	if ib3.listeners == ib2.listeners {
		t.Error("inbound listeners kept after the proxy's own endpoint moved")
	}
}

func names(items []*item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.name)
	}
	return out
}
