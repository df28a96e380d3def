package model

import "testing"

func TestEndpointsHash(t *testing.T) {
	base := func() []*Endpoint {
		return []*Endpoint{
			{Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080, "grpc": 9090}, Labels: map[string]string{"app": "a", "version": "v1"}, ServiceAccount: "sa", PodName: "a-1", Namespace: "ns"},
			{Address: "10.0.0.2", Ports: map[string]uint32{"http": 8080}, Labels: map[string]string{"app": "a"}, Namespace: "ns"},
		}
	}
	h := hashEndpoints(base())
	if h == 0 || hashEndpoints(nil) == 0 {
		t.Fatal("a hash is 0, the value of an unknown host")
	}
	if hashEndpoints(base()) != h {
		t.Fatal("equal endpoints hash differently (map order?)")
	}
	changes := map[string]func([]*Endpoint) []*Endpoint{
		"label value": func(e []*Endpoint) []*Endpoint { e[0].Labels["version"] = "v2"; return e },
		"label moved": func(e []*Endpoint) []*Endpoint {
			delete(e[0].Labels, "version")
			e[1].Labels["version"] = "v1"
			return e
		},
		"port":          func(e []*Endpoint) []*Endpoint { e[1].Ports["http"] = 8081; return e },
		"port name":     func(e []*Endpoint) []*Endpoint { e[1].Ports = map[string]uint32{"web": 8080}; return e },
		"account":       func(e []*Endpoint) []*Endpoint { e[1].ServiceAccount = "other"; return e },
		"address":       func(e []*Endpoint) []*Endpoint { e[1].Address = "10.0.0.3"; return e },
		"one fewer":     func(e []*Endpoint) []*Endpoint { return e[:1] },
		"none":          func(e []*Endpoint) []*Endpoint { return nil },
		"field shifted": func(e []*Endpoint) []*Endpoint { e[0].PodName, e[0].ServiceAccount = "sa", "a-1"; return e },
	}
	for name, change := range changes {
		if hashEndpoints(change(base())) == h {
			t.Errorf("%s: hash unchanged", name)
		}
	}
}

// Only the addresses whose own endpoint came, went or changed are touched;
// the other replicas of the service keep their inbound side.
func TestEndpointAddressesChangedSince(t *testing.T) {
	snap := func(eps ...*Endpoint) *Snapshot {
		s := &Snapshot{endpoints: map[string][]*Endpoint{"a.ns.svc.cluster.local": eps}, epHashes: &endpointHashes{}}
		return s
	}
	ep := func(addr, version string) *Endpoint {
		return &Endpoint{Address: addr, Ports: map[string]uint32{"http": 8080}, Labels: map[string]string{"app": "a", "version": version}, Namespace: "ns"}
	}
	prev := snap(ep("10.0.0.1", "v1"), ep("10.0.0.2", "v1"), ep("10.0.0.3", "v1"))
	cases := map[string]struct {
		cur  *Snapshot
		want []string
	}{
		"unchanged":      {snap(ep("10.0.0.1", "v1"), ep("10.0.0.2", "v1"), ep("10.0.0.3", "v1")), nil},
		"one more":       {snap(ep("10.0.0.1", "v1"), ep("10.0.0.2", "v1"), ep("10.0.0.3", "v1"), ep("10.0.0.4", "v1")), []string{"10.0.0.4"}},
		"one gone":       {snap(ep("10.0.0.1", "v1"), ep("10.0.0.3", "v1")), []string{"10.0.0.2"}},
		"one relabelled": {snap(ep("10.0.0.1", "v1"), ep("10.0.0.2", "v2"), ep("10.0.0.3", "v1")), []string{"10.0.0.2"}},
		"service gone":   {&Snapshot{endpoints: map[string][]*Endpoint{}, epHashes: &endpointHashes{}}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
	}
	for name, c := range cases {
		got := c.cur.EndpointAddressesChangedSince(prev)
		if len(got) != len(c.want) {
			t.Errorf("%s: touched %v, want %v", name, got, c.want)
			continue
		}
		for _, a := range c.want {
			if !got[a] {
				t.Errorf("%s: touched %v, want %v", name, got, c.want)
			}
		}
	}
}
