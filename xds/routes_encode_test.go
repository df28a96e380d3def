package xds

import (
	"bytes"
	"runtime"
	"testing"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// TestRouteEncoderMatchesProto: a table put together from its virtual
// hosts' encodings is byte for byte proto's deterministic encoding, fields
// before and after the virtual hosts included; equal tables share an item.
func TestRouteEncoderMatchesProto(t *testing.T) {
	cfg, _ := anypb.New(wrapperspb.String("per-filter"))
	shared := &routev3.VirtualHost{Name: "a:80", Domains: []string{"a", "a:80"}, Routes: []*routev3.Route{{
		Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		TypedPerFilterConfig: map[string]*anypb.Any{"z": cfg, "b": cfg, "m": cfg}}}}
	tables := []*routev3.RouteConfiguration{
		{Name: "80", VirtualHosts: []*routev3.VirtualHost{shared, {Name: "b:80", Domains: []string{"b"}}},
			ValidateClusters: wrapperspb.Bool(false), MaxDirectResponseBodySizeBytes: wrapperspb.UInt32(1 << 20),
			RequestHeadersToAdd:  []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "y"}}},
			TypedPerFilterConfig: map[string]*anypb.Any{"f": cfg, "a": cfg}},
		{Name: "81", VirtualHosts: []*routev3.VirtualHost{shared}},
		{VirtualHosts: []*routev3.VirtualHost{shared}}, // no name
		{Name: "82"}, // no virtual hosts
	}
	enc := newRouteEncoder()
	for _, rc := range tables {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := enc.marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("table %q: encoded from pieces\n%x\nproto\n%x", rc.GetName(), got, want)
		}
	}
	a, err := enc.part([]*routev3.RouteConfiguration{tables[1]})
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.part([]*routev3.RouteConfiguration{{Name: "81", VirtualHosts: []*routev3.VirtualHost{shared}}})
	if err != nil {
		t.Fatal(err)
	}
	if a.items[0] != b.items[0] {
		t.Error("two equal tables of one encoder got items of their own")
	}
}

// TestVirtualServiceChangeSharesVirtualHosts: the route tables of 1,000
// workloads in 5 namespaces, 10 selected by sourceLabels, are as many as
// their distinct keys, yet namespaces without services of their own get one
// item, and the bytes equal each table's own encoding.
func TestVirtualServiceChangeSharesVirtualHosts(t *testing.T) {
	g, err := newGeneration(model.Build(vsBenchMesh(1000, 1000, 90), 1), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	items := map[*item]bool{}
	for i := 0; i < 1000; i++ {
		p := benchProxyIn(i)
		sets, _, err := g.build(p, nil, [numTypes]*resourceSet{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pt := range sets[rdsType].parts {
			for _, it := range pt.items {
				if !items[it] {
					items[it] = true
					rc := &routev3.RouteConfiguration{}
					if err := proto.Unmarshal(it.any.Value, rc); err != nil {
						t.Fatal(err)
					}
					sc := g.snap.ScopeFor(p)
					want := translate.SidecarOutboundRoutes(g.snap.View(sc), p)
					if len(want) != 1 || !proto.Equal(rc, want[0]) {
						t.Fatalf("proxy %s: the shared table is not its own", p.ID)
					}
				}
			}
		}
	}
	// default's own (short names), one for ns-1..ns-4 alike, and one per
	// sourceLabels workload (w1..w10, in their namespaces).
	if len(items) != 12 {
		t.Errorf("%d distinct route table items for 1,000 workloads, want 12", len(items))
	}
}

// TestPartsDoNotChain: a part diffed against its predecessor does not keep
// it alive. (It did: each change's parts held the last change's, so every
// generation stayed in memory — ~6 MB per VirtualService change at 1,000
// proxies.)
func TestPartsDoNotChain(t *testing.T) {
	mk := func(v string) *part {
		it, err := newItem(wrapperspb.String(v), "r")
		if err != nil {
			t.Fatal(err)
		}
		p, err := partOf([]*item{it})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	prev, next := mk("a"), mk("b")
	if changed := next.changedSince(prev); len(changed) != 1 {
		t.Fatalf("changed since: %d items, want 1", len(changed))
	}
	w := weak.Make(prev)
	prev = nil
	runtime.GC()
	runtime.GC()
	if w.Value() != nil {
		t.Error("a part keeps the part it was diffed against alive")
	}
	if changed := next.changedSince(mk("a")); len(changed) != 1 {
		t.Errorf("after a diff from an equal part: %d items, want 1", len(changed))
	}
	runtime.KeepAlive(next)
}
