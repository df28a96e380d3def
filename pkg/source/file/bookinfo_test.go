package file

import (
	"path/filepath"
	"slices"
	"testing"
)

// The example is what the e2e rig and the README run; it must load cleanly and
// stay self-consistent.
func TestBookinfoExample(t *testing.T) {
	in := mustLoad(t, filepath.Join("..", "..", "..", "examples", "bookinfo"))

	counts := []struct {
		kind      string
		got, want int
	}{
		{"Namespaces", len(in.Namespaces), 1},
		{"Services", len(in.Services), 4},
		{"ServiceAccounts", len(in.ServiceAccounts), 4},
		{"Pods", len(in.Pods), 6},
		{"EndpointSlices", len(in.EndpointSlices), 4},
		{"Gateways", len(in.Gateways), 1},
		{"VirtualServices", len(in.VirtualServices), 1},
		{"DestinationRules", len(in.DestinationRules), 4},
		{"others", len(in.ConfigMaps) + len(in.ServiceEntries) + len(in.Sidecars) +
			len(in.PeerAuthentications) + len(in.AuthorizationPolicies) + len(in.RequestAuthentications), 0},
	}
	for _, c := range counts {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.kind, c.got, c.want)
		}
	}
	if t.Failed() {
		return
	}

	// Every endpoint names a Pod with the same address, and that Pod's
	// service account exists.
	podIP := map[string]string{}
	podSA := map[string]string{}
	for _, p := range in.Pods {
		podIP[p.Name], podSA[p.Name] = p.Status.PodIP, p.Spec.ServiceAccountName
	}
	var sas []string
	for _, sa := range in.ServiceAccounts {
		sas = append(sas, sa.Name)
	}
	var addrs []string
	for _, es := range in.EndpointSlices {
		if es.Labels["kubernetes.io/service-name"] == "" || es.Ports[0].Name == nil || *es.Ports[0].Name != "http" || *es.Ports[0].Port != 9080 {
			t.Errorf("EndpointSlice %s: labels %v ports %v", es.Name, es.Labels, es.Ports)
		}
		for _, ep := range es.Endpoints {
			pod := ep.TargetRef.Name
			if podIP[pod] != ep.Addresses[0] || ep.Conditions.Ready == nil || !*ep.Conditions.Ready {
				t.Errorf("endpoint %v: pod %s has IP %q", ep.Addresses, pod, podIP[pod])
			}
			if !slices.Contains(sas, podSA[pod]) {
				t.Errorf("pod %s: service account %q not defined", pod, podSA[pod])
			}
			addrs = append(addrs, ep.Addresses[0])
		}
	}
	slices.Sort(addrs)
	if want := []string{"127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4", "127.0.1.5", "127.0.1.6"}; !slices.Equal(addrs, want) {
		t.Errorf("endpoint addresses = %v, want %v", addrs, want)
	}

	clusterIPs := map[string]string{}
	for _, svc := range in.Services {
		clusterIPs[svc.Name] = svc.Spec.ClusterIP
		if p := svc.Spec.Ports[0]; p.Name != "http" || p.Port != 9080 || svc.Spec.Selector["app"] != svc.Name {
			t.Errorf("Service %s: ports %v selector %v", svc.Name, svc.Spec.Ports, svc.Spec.Selector)
		}
	}
	for name, ip := range map[string]string{"productpage": "10.96.0.10", "details": "10.96.0.11", "ratings": "10.96.0.12", "reviews": "10.96.0.13"} {
		if clusterIPs[name] != ip {
			t.Errorf("Service %s: clusterIP %q, want %s", name, clusterIPs[name], ip)
		}
	}

	gw := in.Gateways[0]
	if gw.Name != "bookinfo-gateway" || gw.Spec.GetServers()[0].GetPort().GetNumber() != 80 {
		t.Errorf("Gateway = %s %v", gw.Name, gw.Spec.String())
	}
	vs := in.VirtualServices[0]
	// The UI's paths go to productpage; /api/v1/reviews is make run's 90/10
	// split of reviews (v1/v2), the weights README.md tells newcomers to edit.
	if h := vs.Spec.GetHttp(); len(h) != 2 || len(h[0].GetMatch()) != 5 ||
		h[0].GetRoute()[0].GetDestination().GetHost() != "productpage" ||
		h[0].GetRoute()[0].GetDestination().GetPort().GetNumber() != 9080 ||
		len(h[1].GetRoute()) != 2 || h[1].GetRoute()[0].GetWeight() != 90 || h[1].GetRoute()[1].GetWeight() != 10 ||
		h[1].GetRoute()[0].GetDestination().GetSubset() != "v1" || h[1].GetRoute()[1].GetDestination().GetSubset() != "v2" {
		t.Errorf("VirtualService = %v", vs.Spec.String())
	}
	for _, dr := range in.DestinationRules {
		if dr.Name == "reviews" && len(dr.Spec.GetSubsets()) != 3 {
			t.Errorf("reviews subsets = %v", dr.Spec.GetSubsets())
		}
	}
}
