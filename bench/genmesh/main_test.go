package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"
)

type parsed struct {
	namespaces []*corev1.Namespace
	services   []*corev1.Service
	slices     []*discoveryv1.EndpointSlice
	vss        []*networking.VirtualService
	drs        []*networking.DestinationRule
}

func parseDir(t *testing.T, dir string) parsed {
	t.Helper()
	var p parsed
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			t.Errorf("non-YAML file %s in the mesh directory", e.Name())
			continue
		}
		p.add(t, filepath.Join(dir, e.Name()))
	}
	return p
}

func (p *parsed) add(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var obj any
		switch meta.Kind {
		case "Namespace":
			o := &corev1.Namespace{}
			p.namespaces, obj = append(p.namespaces, o), o
		case "Service":
			o := &corev1.Service{}
			p.services, obj = append(p.services, o), o
		case "EndpointSlice":
			o := &discoveryv1.EndpointSlice{}
			p.slices, obj = append(p.slices, o), o
		case "VirtualService":
			o := &networking.VirtualService{}
			p.vss, obj = append(p.vss, o), o
		case "DestinationRule":
			o := &networking.DestinationRule{}
			p.drs, obj = append(p.drs, o), o
		default:
			t.Fatalf("%s: unexpected kind %q", file, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %s: %v", file, meta.Kind, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	out := t.TempDir()
	c := config{Services: 25, Namespace: "bench", Endpoints: 5, VSEvery: 10, ClusterIPPrefix: "10.100", EndpointPrefix: "10.200"}
	if err := generate(c, out); err != nil {
		t.Fatal(err)
	}
	p := parseDir(t, filepath.Join(out, "mesh"))
	if len(p.namespaces) != 1 || len(p.services) != 25 || len(p.slices) != 25 || len(p.vss) != 3 || len(p.drs) != 3 {
		t.Fatalf("got %d namespaces, %d services, %d slices, %d VS, %d DR",
			len(p.namespaces), len(p.services), len(p.slices), len(p.vss), len(p.drs))
	}
	ips := map[string]bool{}
	for _, s := range p.services {
		if s.Namespace != "bench" || s.Spec.ClusterIP == "" || !strings.HasPrefix(s.Spec.ClusterIP, "10.100.") ||
			len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "http" || s.Spec.Ports[0].Port != 8080 {
			t.Errorf("service %+v", s)
		}
		if ips[s.Spec.ClusterIP] {
			t.Errorf("duplicate clusterIP %s", s.Spec.ClusterIP)
		}
		ips[s.Spec.ClusterIP] = true
	}
	for _, es := range p.slices {
		if es.Labels[discoveryv1.LabelServiceName] == "" || len(es.Endpoints) != 5 || es.AddressType != discoveryv1.AddressTypeIPv4 ||
			len(es.Ports) != 1 || *es.Ports[0].Port != 8080 {
			t.Errorf("slice %+v", es)
		}
		for _, ep := range es.Endpoints {
			a := ep.Addresses[0]
			if !strings.HasPrefix(a, "10.200.") || ips[a] || ep.Conditions.Ready == nil || !*ep.Conditions.Ready {
				t.Errorf("endpoint %+v", ep)
			}
			ips[a] = true
		}
	}
	// Istio's spec unmarshalling ignores unknown fields, so check every field read.
	for _, dr := range p.drs {
		h := dr.Name + ".bench.svc.cluster.local"
		if dr.Spec.Host != h || len(dr.Spec.Subsets) != 2 || dr.Spec.Subsets[0].Name != "v1" || dr.Spec.Subsets[1].Name != "v2" ||
			dr.Spec.Subsets[0].Labels["version"] != "v1" || dr.Spec.Subsets[1].Labels["version"] != "v2" {
			t.Errorf("DR %s: %v", dr.Name, &dr.Spec)
		}
	}
	for _, vs := range p.vss {
		h := vs.Name + ".bench.svc.cluster.local"
		if len(vs.Spec.Hosts) != 1 || vs.Spec.Hosts[0] != h || len(vs.Spec.Http) != 1 || len(vs.Spec.Http[0].Route) != 2 {
			t.Fatalf("VS %s: %v", vs.Name, &vs.Spec)
		}
		want := []int32{90, 10}
		if vs.Name == "svc-0" { // the change file starts as variant b
			want = []int32{80, 20}
		}
		for i, r := range vs.Spec.Http[0].Route {
			d := r.Destination
			if d.Host != h || d.Subset != []string{"v1", "v2"}[i] || d.Port.GetNumber() != 8080 || r.Weight != want[i] {
				t.Errorf("VS %s route %d: %v", vs.Name, i, r)
			}
		}
	}

	// The change file starts as b; a and b differ only in svc-0's weights.
	weights := func(file string) []int32 {
		var v parsed
		v.add(t, file)
		if len(v.vss) != 1 || v.vss[0].Name != "svc-0" {
			t.Fatalf("%s: %v", file, v.vss)
		}
		var w []int32
		for _, r := range v.vss[0].Spec.Http[0].Route {
			w = append(w, r.Weight)
		}
		return w
	}
	for file, want := range map[string][2]int32{
		filepath.Join(out, "variants", "a.yaml"):    {90, 10},
		filepath.Join(out, "variants", "b.yaml"):    {80, 20},
		filepath.Join(out, "mesh", "vs-svc-0.yaml"): {80, 20},
	} {
		if w := weights(file); len(w) != 2 || w[0] != want[0] || w[1] != want[1] {
			t.Errorf("%s: weights %v, want %v", file, w, want)
		}
	}

	// The endpoint change: svc-1's slice, as generated in mesh/ and eds-b,
	// one more endpoint (the next free address) in eds-a.
	slice := func(file string) *discoveryv1.EndpointSlice {
		var v parsed
		v.add(t, file)
		if len(v.slices) != 1 || v.slices[0].Name != "svc-1-gen" || len(v.services)+len(v.vss)+len(v.drs) != 0 {
			t.Fatalf("%s: want svc-1's EndpointSlice alone", file)
		}
		return v.slices[0]
	}
	cur, a, b := slice(filepath.Join(out, "mesh", "eps-svc-1.yaml")), slice(filepath.Join(out, "variants", "eds-a.yaml")), slice(filepath.Join(out, "variants", "eds-b.yaml"))
	if len(cur.Endpoints) != 5 || len(b.Endpoints) != 5 || len(a.Endpoints) != 6 || a.Endpoints[5].Addresses[0] != "10.200.0.126" ||
		a.Endpoints[0].Addresses[0] != cur.Endpoints[0].Addresses[0] || b.Endpoints[4].Addresses[0] != cur.Endpoints[4].Addresses[0] {
		t.Errorf("endpoint variants: mesh %v, a %v, b %v", cur.Endpoints, a.Endpoints, b.Endpoints)
	}

	// A second, smaller run replaces mesh/ (no stale services).
	c.Services = 3
	if err := generate(c, out); err != nil {
		t.Fatal(err)
	}
	if p := parseDir(t, filepath.Join(out, "mesh")); len(p.services) != 3 {
		t.Errorf("after regenerating: %d services", len(p.services))
	}
	// A foreign, non-empty directory is never replaced.
	foreign := t.TempDir()
	_ = os.MkdirAll(filepath.Join(foreign, "mesh"), 0o755)
	_ = os.WriteFile(filepath.Join(foreign, "mesh", "keep.yaml"), []byte("x: 1\n"), 0o644)
	if err := generate(c, foreign); err == nil {
		t.Error("replaced a foreign directory")
	}
}

func TestValidate(t *testing.T) {
	base := config{Services: 10, Namespace: "bench", Endpoints: 5, VSEvery: 10, ClusterIPPrefix: "10.100", EndpointPrefix: "10.200"}
	for _, mod := range []func(*config){
		func(c *config) { c.Services = 0 },
		func(c *config) { c.Services = 20000 }, // 100000 endpoints
		func(c *config) { c.ClusterIPPrefix = "10" },
		func(c *config) { c.Namespace = "" },
	} {
		c := base
		mod(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
