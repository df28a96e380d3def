package loadclient

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/internal/xdstest"
)

func anys(t *testing.T, rs map[string]types.Resource) []*anypb.Any {
	t.Helper()
	var out []*anypb.Any
	for _, r := range rs {
		a, err := anypb.New(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestDecodeNames(t *testing.T) {
	snap, err := xdstest.Snapshot("1", 3)
	if err != nil {
		t.Fatal(err)
	}
	cds := anys(t, snap.GetResources(TypeCDS))
	// A TTL/heartbeat-style wrapped resource must be unwrapped.
	wrapped, err := anypb.New(&discovery.Resource{Name: "x", Resource: cds[0]})
	if err != nil {
		t.Fatal(err)
	}
	cds[0] = wrapped
	got, err := EDSClusterNames(cds)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{xdstest.EDSName(0), xdstest.EDSName(1), xdstest.EDSName(2)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("EDS names %v, want %v", got, want)
	}

	lds := anys(t, snap.GetResources(TypeLDS))
	got, err = RDSRouteNames(lds)
	if err != nil || !slices.Equal(got, []string{xdstest.RouteName}) {
		t.Errorf("RDS names %v (%v), want [80]", got, err)
	}

	// Garbage is reported but does not hide the good resources.
	bad := &anypb.Any{TypeUrl: TypeCDS, Value: []byte{0xff, 0xff}}
	got, err = EDSClusterNames(append(cds, bad))
	if err == nil || len(got) != 3 {
		t.Errorf("with a bad resource: %v, %v", got, err)
	}
}

func TestParseStat(t *testing.T) {
	// comm with spaces and parentheses; utime=1500 stime=250.
	stat := "4242 (my (weird) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 1500 250 0 0 20 0 12 0 100 1000000 2000 18446744073709551615"
	got, err := ParseStatCPUTicks(stat)
	if err != nil || got != 1750 {
		t.Fatalf("got %d, %v; want 1750", got, err)
	}
	if _, err := ParseStatCPUTicks("garbage"); err == nil {
		t.Error("no error for garbage")
	}
	rss, hwm := ParseStatusMemory("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n")
	if rss != 1024*1024 || hwm != 2048*1024 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	if tck := ClockTicks(); tck <= 0 || tck > 10000 {
		t.Errorf("clock ticks %v", tck)
	}
}

func TestProcSamplerSelf(t *testing.T) {
	s, err := StartProcSampler(context.Background(), os.Getpid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn a little CPU
	}
	st := s.Stop()
	if st.RSSPeak == 0 || st.RSSFinal == 0 || st.VmHWM == 0 || st.Samples < 2 || st.CPUSeconds < 0 || st.Exited {
		t.Errorf("stats %+v", st)
	}
	if _, err := StartProcSampler(context.Background(), 1<<30, 0); err == nil {
		t.Error("no error for a missing pid")
	}
}

func TestTriggers(t *testing.T) {
	dir := t.TempDir()
	a, b, target := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "mesh", "vs.yaml")
	if err := os.Mkdir(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(a, []byte("A\n"), 0o644)
	_ = os.WriteFile(b, []byte("B\n"), 0o644)
	ft, err := NewFileToggler(target, a, b)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[int]string{1: "A\n", 2: "B\n", 3: "A\n"} {
		if err := ft.Trigger(k)(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(target); string(got) != want {
			t.Errorf("change %d wrote %q, want %q", k, got, want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	if _, err := NewFileToggler(target, a, a); err == nil {
		t.Error("identical variants accepted")
	}

	out := filepath.Join(dir, "cmd.out")
	if err := CommandTrigger(`echo "$XDSLOAD_CHANGE $XDSLOAD_VARIANT" > `+out, 4)(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); strings.TrimSpace(string(got)) != "4 b" {
		t.Errorf("command saw %q", got)
	}
	if err := CommandTrigger("echo boom >&2; exit 3", 1)(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failing command: %v", err)
	}
}

// fakeDelta records what a delta proxy sends.
type fakeDelta struct {
	sent []*discovery.DeltaDiscoveryRequest
}

func (f *fakeDelta) Send(r *discovery.DeltaDiscoveryRequest) error {
	f.sent = append(f.sent, r)
	return nil
}

func (f *fakeDelta) take() []*discovery.DeltaDiscoveryRequest {
	s := f.sent
	f.sent = nil
	return s
}

// lean is resp as a delta proxy reads it off the wire.
func lean(t *testing.T, resp *discovery.DeltaDiscoveryResponse) *leanDelta {
	t.Helper()
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := parseDelta(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

func deltaResp(t *testing.T, typ, nonce string, rs map[string]types.Resource, version string, removed ...string) *discovery.DeltaDiscoveryResponse {
	t.Helper()
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: typ, Nonce: nonce, SystemVersionInfo: version, RemovedResources: removed}
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a, err := anypb.New(rs[n])
		if err != nil {
			t.Fatal(err)
		}
		resp.Resources = append(resp.Resources, &discovery.Resource{Name: n, Version: version + "-" + n, Resource: a})
	}
	return resp
}

// The delta protocol of one proxy, step by step: ACK by nonce, EDS/RDS
// subscriptions following the clusters and listeners held, removals, and the
// requests of a re-opened stream.
func TestDeltaProxySteps(t *testing.T) {
	c, err := New(Config{Addr: "x", Proxies: 1, Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	p := c.proxies[0]
	p.mu.Lock()
	open := p.deltaOpenRequestsLocked()
	p.mu.Unlock()
	if len(open) != 2 || open[0].GetTypeUrl() != TypeCDS || open[1].GetTypeUrl() != TypeLDS ||
		len(open[0].GetResourceNamesSubscribe()) != 0 || len(open[0].GetInitialResourceVersions()) != 0 {
		t.Fatalf("first requests %v", open)
	}
	snap, err := xdstest.Snapshot("1", 3)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDelta{}
	handle := func(resp *discovery.DeltaDiscoveryResponse) []*discovery.DeltaDiscoveryRequest {
		t.Helper()
		if err := p.handleDelta(f, lean(t, resp), time.Now()); err != nil {
			t.Fatal(err)
		}
		sent := f.take()
		if len(sent) == 0 || sent[0].GetResponseNonce() != resp.GetNonce() || sent[0].GetTypeUrl() != resp.GetTypeUrl() ||
			len(sent[0].GetResourceNamesSubscribe())+len(sent[0].GetResourceNamesUnsubscribe()) != 0 || sent[0].GetErrorDetail() != nil {
			t.Fatalf("first request after %s is not its ACK: %v", resp.GetNonce(), sent)
		}
		return sent[1:]
	}
	full := func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.deltaFullLocked() }

	cds := snap.GetResources(TypeCDS)
	sub := handle(deltaResp(t, TypeCDS, "n1", cds, "1"))
	want := []string{xdstest.EDSName(0), xdstest.EDSName(1), xdstest.EDSName(2)}
	slices.Sort(want)
	if len(sub) != 1 || sub[0].GetTypeUrl() != TypeEDS || !slices.Equal(sub[0].GetResourceNamesSubscribe(), want) {
		t.Fatalf("after CDS: %v, want an EDS subscription of %v", sub, want)
	}
	if sub := handle(deltaResp(t, TypeLDS, "n2", snap.GetResources(TypeLDS), "1")); len(sub) != 1 ||
		sub[0].GetTypeUrl() != TypeRDS || !slices.Equal(sub[0].GetResourceNamesSubscribe(), []string{xdstest.RouteName}) {
		t.Fatalf("after LDS: %v, want an RDS subscription of [80]", sub)
	}
	if full() {
		t.Fatal("full config before EDS and RDS")
	}
	eds := snap.GetResources(TypeEDS)
	// Part of the endpoints, plus one never subscribed (ignored).
	part := map[string]types.Resource{xdstest.EDSName(0): eds[xdstest.EDSName(0)], "not-subscribed": eds[xdstest.EDSName(1)]}
	if sub := handle(deltaResp(t, TypeEDS, "n3", part, "1")); len(sub) != 0 || full() {
		t.Fatalf("after part of EDS: %v, full %v", sub, full())
	}
	handle(deltaResp(t, TypeRDS, "n4", snap.GetResources(TypeRDS), "1"))
	// One subscribed name does not exist: removed_resources answers it.
	delete(eds, xdstest.EDSName(0))
	delete(eds, xdstest.EDSName(2))
	handle(deltaResp(t, TypeEDS, "n5", eds, "1", xdstest.EDSName(2)))
	if !full() {
		t.Fatalf("not full after every subscribed name was answered: %+v", p.status().Types)
	}

	// Cluster 2 goes away: its EDS name is unsubscribed.
	sub = handle(deltaResp(t, TypeCDS, "n6", nil, "2", xdstest.ClusterName(2)))
	if len(sub) != 1 || !slices.Equal(sub[0].GetResourceNamesUnsubscribe(), []string{xdstest.EDSName(2)}) || len(sub[0].GetResourceNamesSubscribe()) != 0 {
		t.Fatalf("after removing cluster 2: %v", sub)
	}
	// Cluster 1 redefined with the same EDS name: no subscription change.
	if sub := handle(deltaResp(t, TypeCDS, "n7", map[string]types.Resource{xdstest.ClusterName(1): cds[xdstest.ClusterName(1)]}, "3")); len(sub) != 0 {
		t.Fatalf("after redefining cluster 1: %v", sub)
	}
	st := p.status()
	if got := st.Types[TypeEDS].Names; len(got) != 2 || st.Types[TypeCDS].Held != 3 || st.Types[TypeEDS].Held != 2 || st.Types[TypeCDS].Version != "3" {
		t.Errorf("status %+v", st.Types)
	}
	var hist []string
	for _, h := range st.History {
		hist = append(hist, ShortType(h.Type)+h.Version)
	}
	if want := "CDS1,LDS1,EDS1,RDS1,EDS1,CDS2,CDS3"; strings.Join(hist, ",") != want {
		t.Errorf("history %v, want %s", hist, want)
	}

	// A re-opened stream tells what is held and re-subscribes EDS and RDS.
	p.mu.Lock()
	open = p.deltaOpenRequestsLocked()
	full2 := p.deltaFullLocked()
	p.mu.Unlock()
	if full2 {
		t.Error("full config on a new stream before CDS and LDS are ACKed")
	}
	byType := map[string]*discovery.DeltaDiscoveryRequest{}
	for _, r := range open {
		byType[ShortType(r.GetTypeUrl())] = r
	}
	if len(open) != 4 || open[0].GetTypeUrl() != TypeCDS || len(byType["CDS"].GetResourceNamesSubscribe()) != 0 ||
		byType["CDS"].GetInitialResourceVersions()[xdstest.ClusterName(1)] != "3-"+xdstest.ClusterName(1) ||
		len(byType["CDS"].GetInitialResourceVersions()) != 3 {
		t.Fatalf("reconnect requests %v", open)
	}
	if r := byType["EDS"]; len(r.GetResourceNamesSubscribe()) != 2 || len(r.GetInitialResourceVersions()) != 2 ||
		r.GetInitialResourceVersions()[xdstest.EDSName(1)] != "1-"+xdstest.EDSName(1) {
		t.Errorf("EDS on reconnect: %v", r)
	}
	if r := byType["RDS"]; !slices.Equal(r.GetResourceNamesSubscribe(), []string{xdstest.RouteName}) || len(r.GetInitialResourceVersions()) != 1 {
		t.Errorf("RDS on reconnect: %v", r)
	}
}

// The wire scan of a cluster's EDS name agrees with the full decoder.
func TestScanEDSName(t *testing.T) {
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	edsCluster := func(name, service string) *clusterv3.Cluster {
		return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads, ServiceName: service},
			ConnectTimeout:   durationpb.New(time.Second), LbPolicy: clusterv3.Cluster_LEAST_REQUEST}
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	custom := &clusterv3.Cluster{Name: "custom", ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "x"}}}
	cases := map[string][]byte{
		"eds with service name":    marshal(edsCluster("outbound|8080||a.b.svc.cluster.local", "svc-a")),
		"eds without service name": marshal(edsCluster("outbound|8080||a.b.svc.cluster.local", "")),
		"static":                   marshal(&clusterv3.Cluster{Name: "BlackHoleCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}),
		"no discovery type":        marshal(&clusterv3.Cluster{Name: "unset", EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "x"}}),
		"logical dns":              marshal(&clusterv3.Cluster{Name: "dns", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}}),
		"custom type":              marshal(custom),
		// A oneof set twice: the last one wins; messages merge, scalars: last wins.
		"eds then custom":   append(marshal(edsCluster("a", "s")), marshal(custom)...),
		"custom then eds":   append(marshal(custom), marshal(edsCluster("a", ""))...),
		"eds config merged": append(marshal(edsCluster("a", "first")), marshal(&clusterv3.Cluster{EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}})...),
		"renamed":           append(marshal(edsCluster("a", "")), marshal(&clusterv3.Cluster{Name: "b"})...),
	}
	for what, b := range cases {
		a := &anypb.Any{TypeUrl: clusterTypeURL, Value: b}
		wantName, wantOK, err := decodeEDSName(a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		name, ok, err := scanEDSName(b)
		if err != nil || string(name) != wantName || ok != wantOK {
			t.Errorf("%s: scan says %q %v %v, the decoder %q %v", what, name, ok, err, wantName, wantOK)
		}
		if name, ok, err := EDSNameOf(a); err != nil || name != wantName || ok != wantOK {
			t.Errorf("%s: EDSNameOf says %q %v %v, the decoder %q %v", what, name, ok, err, wantName, wantOK)
		}
	}
	if _, _, err := scanEDSName([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Error("truncated cluster scanned without error")
	}
	if _, _, err := EDSNameOf(&anypb.Any{TypeUrl: clusterTypeURL, Value: []byte{0x0a, 0x05, 'a'}}); err == nil {
		t.Error("truncated cluster decoded without error")
	}
}

// istiod sends delta resources without a version: each one sent is a new
// version to the proxy (Envoy applies it again), so a change converges.
func TestDeltaVersionless(t *testing.T) {
	c, err := New(Config{Addr: "x", Proxies: 1, Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	p := c.proxies[0]
	snap, err := xdstest.Snapshot("1", 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDelta{}
	send := func(nonce string) {
		t.Helper()
		resp := deltaResp(t, TypeCDS, nonce, snap.GetResources(TypeCDS), "push-"+nonce)
		for _, r := range resp.Resources {
			r.Version = ""
		}
		if err := p.handleDelta(f, lean(t, resp), time.Now()); err != nil {
			t.Fatal(err)
		}
		f.take()
	}
	send("n1")
	send("n2")
	if h := p.status().History; len(h) != 2 {
		t.Errorf("history %v: want two new CDS versions", h)
	}
}

// parseDelta reads what the full decoder would: names, versions, nonce,
// removals, the clusters' EDS names and the listeners' route names, whatever
// the order of the fields on the wire.
func TestParseDeltaMatchesDecoder(t *testing.T) {
	snap, err := xdstest.Snapshot("1", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{TypeCDS, TypeLDS, TypeEDS, TypeRDS} {
		resp := deltaResp(t, typ, "n7", snap.GetResources(typ), "v3", "gone-a", "gone-b")
		want := resp
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		// The type URL, nonce and version first, then the resources: the
		// resources' dependencies must still be read by their type.
		var swapped []byte
		swapped = protowire.AppendTag(swapped, respTypeURL, protowire.BytesType)
		swapped = protowire.AppendString(swapped, typ)
		swapped = append(swapped, b...)
		for _, wire := range [][]byte{b, swapped} {
			got, err := parseDelta(wire, nil)
			if err != nil {
				t.Fatalf("%s: %v", ShortType(typ), err)
			}
			if got.typeURL != typ || got.nonce != "n7" || got.sysVer != "v3" || !slices.Equal(got.removed, []string{"gone-a", "gone-b"}) || got.size != len(wire) {
				t.Errorf("%s: header %+v", ShortType(typ), got)
			}
			if len(got.resources) != len(want.GetResources()) {
				t.Fatalf("%s: %d resources, want %d", ShortType(typ), len(got.resources), len(want.GetResources()))
			}
			for i, r := range want.GetResources() {
				lr := got.resources[i]
				if lr.name.Value() != r.GetName() || lr.version.Value() != r.GetVersion() || !lr.hasResource || lr.err != nil {
					t.Errorf("%s: resource %d = %+v, want %s@%s", ShortType(typ), i, lr, r.GetName(), r.GetVersion())
				}
				switch typ {
				case TypeCDS:
					name, ok, _ := EDSNameOf(r.GetResource())
					if lr.eds != ok || (ok && lr.edsName.Value() != name) {
						t.Errorf("cluster %s: eds %v %q, want %v %q", r.GetName(), lr.eds, handleValue(lr.edsName), ok, name)
					}
				case TypeLDS:
					names, _ := RDSNamesOf(r.GetResource())
					if !slices.Equal(lr.rdsNames, names) {
						t.Errorf("listener %s: routes %v, want %v", r.GetName(), lr.rdsNames, names)
					}
				}
			}
		}
	}
	if _, err := parseDelta([]byte{0x12, 0x05, 0x1a}, nil); err == nil {
		t.Error("truncated response parsed without error")
	}
}

func handleValue(h handle) string {
	if h == (handle{}) {
		return ""
	}
	return h.Value()
}
