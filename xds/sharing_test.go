package xds

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// shareMesh is 20 HTTP services on port 8080 and the VirtualServices given.
func shareMesh(vss ...*networking.VirtualService) *model.Inputs {
	in := &model.Inputs{VirtualServices: vss}
	for i := 0; i < 20; i++ {
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.1.%d", i+1),
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
		})
	}
	return in
}

// workload is the sidecar of pod i of a distinct Deployment: its own app,
// version and pod-template-hash labels, as in a real cluster.
func workload(i int) *model.Proxy {
	p, err := model.ParseProxy(fmt.Sprintf("sidecar~10.2.%d.%d~w%d-abc.default~default.svc.cluster.local", i/250, i%250+1, i), map[string]any{
		"LABELS": map[string]any{"app": fmt.Sprintf("w%d", i), "version": "v1", "pod-template-hash": fmt.Sprintf("%08x", i*7919)},
	})
	if err != nil {
		panic(err)
	}
	return p
}

// distinctRouteParts builds 1,000 distinct workloads' config from one
// generation and counts the distinct route tables and L4 listener parts.
func distinctRouteParts(t *testing.T, in *model.Inputs) (routes, listeners int) {
	t.Helper()
	snap := model.Build(in, 1)
	for _, e := range snap.Errors {
		if !e.Warning {
			t.Fatalf("fixture error: %+v", e)
		}
	}
	g, err := newGeneration(snap, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, ls := map[*part]bool{}, map[*part]bool{}
	for i := 0; i < 1000; i++ {
		sets, _, err := g.build(workload(i), nil, [numTypes]*resourceSet{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range sets[rdsType].parts {
			rs[p] = true
		}
		// The sidecar's per-key L4 listeners are the LDS part after the scope's shared one.
		ls[sets[ldsType].parts[1]] = true
	}
	return len(rs), len(ls)
}

// Issue 12's sharing rule: 1,000 distinct workloads with no sourceLabels
// anywhere share one route table per port; one sourceLabels VirtualService
// adds exactly one variant (for the workloads it selects), not one per workload.
func TestDistinctWorkloadsShareRouteTables(t *testing.T) {
	if r, l := distinctRouteParts(t, shareMesh()); r != 1 || l != 1 {
		t.Errorf("no sourceLabels: %d route parts and %d L4 listener parts for 1,000 workloads, want 1 and 1", r, l)
	}
	canary := &networking.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-3", Namespace: "default"},
		Spec: networkingapi.VirtualService{
			Hosts: []string{"svc-3"},
			Http: []*networkingapi.HTTPRoute{{
				Match: []*networkingapi.HTTPMatchRequest{{SourceLabels: map[string]string{"app": "w7"}}},
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "svc-4"}}},
			}, {
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "svc-3"}}},
			}},
		},
	}
	if r, _ := distinctRouteParts(t, shareMesh(canary)); r != 2 {
		t.Errorf("one sourceLabels VirtualService: %d route parts for 1,000 workloads, want 2", r)
	}
}

// An endpoint change leaves a proxy's clusters, listeners and routes as they
// were: a build handed the proxy's previous sets returns those very sets
// (no new versions to hash, nothing for install or the delta diff to look
// at), and a new EDS set.
func TestEndpointChangeReusesUnchangedSets(t *testing.T) {
	g1, err := newGeneration(model.Build(benchMesh(50, 5, ""), 1), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := workload(3)
	s1, in1, err := g1.build(p, nil, [numTypes]*resourceSet{})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := newGeneration(model.Build(benchMesh(50, 5, "10.201.0.1"), 2), g1, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, err := g2.build(p, in1, s1)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []typeIndex{cdsType, ldsType, rdsType} {
		if s2[typ] != s1[typ] {
			t.Errorf("%s: a new set for an endpoint-only change (versions %s, %s)", typeLabels[typ], s1[typ].version, s2[typ].version)
		}
	}
	if s2[edsType] == s1[edsType] || s2[edsType].version == s1[edsType].version {
		t.Errorf("eds: the set of the old endpoints was kept")
	}
	// Without the previous sets, equal parts still give an equal version.
	s3, _, err := g2.build(p, in1, [numTypes]*resourceSet{})
	if err != nil {
		t.Fatal(err)
	}
	if s3[cdsType].version != s1[cdsType].version {
		t.Errorf("cds: version %s rebuilt from the same parts, want %s", s3[cdsType].version, s1[cdsType].version)
	}
	// The short way (the previous sets kept) and the long way (every part
	// looked up again) give the same config.
	for typ := range numTypes {
		if s2[typ].version != s3[typ].version {
			t.Errorf("%s: version %s kept, %s rebuilt", typeLabels[typ], s2[typ].version, s3[typ].version)
		}
	}
}

// newResourceSet's hand-rolled hash is FNV-1a over the parts' versions,
// little-endian, formatted %016x: versions stay what they were.
func TestResourceSetVersion(t *testing.T) {
	for _, versions := range [][]uint64{{}, {0}, {1, 2, 3}, {0xdeadbeefcafef00d, 42}} {
		var parts []*part
		h := fnv.New64a()
		for _, v := range versions {
			parts = append(parts, nil, &part{version: v})
			_ = binary.Write(h, binary.LittleEndian, v)
		}
		if got, want := newResourceSet(parts...).version, fmt.Sprintf("%016x", h.Sum64()); got != want {
			t.Errorf("versions %x: set version %s, want %s", versions, got, want)
		}
	}
}
