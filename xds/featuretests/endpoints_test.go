package featuretests

import (
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// An endpoint-only change (an address added to an EndpointSlice) pushes EDS and
// nothing else, and only pilot_xds_pushes{type="eds"} rises.
func TestEndpointOnlyChangePushesOnlyEDS(t *testing.T) {
	h, base, c := syncedClient(t)
	before := h.pushes()
	if before["eds"] == 0 || before["cds"] == 0 || before["lds"] == 0 || before["rds"] == 0 {
		t.Fatalf("pushes before the change = %v, want all four counted", before)
	}

	// A second details pod. The Service objects are the very same, so only
	// endpoints differ.
	in := *base
	in.EndpointSlices = slices.Clone(base.EndpointSlices)
	in.Pods = append(slices.Clone(base.Pods), pod("default", "details-1", "10.1.3.2", map[string]string{"app": "details"}))
	for i, es := range in.EndpointSlices {
		if es.Labels[discoveryv1.LabelServiceName] == "details" {
			in.EndpointSlices[i] = slice("default", "details", "http", 9080, endpoint{"10.1.3.1", "details-0"}, endpoint{"10.1.3.2", "details-1"})
		}
	}
	snap := h.update(&in)

	eds := c.expect(EDS)
	c.handle(eds)
	c.expectNone(quiet) // no CDS, LDS or RDS

	details := "outbound|9080||details.default.svc.cluster.local"
	cla, _ := c.resource(EDS, details).(*endpointv3.ClusterLoadAssignment)
	var addrs []string
	for _, lle := range cla.GetEndpoints() {
		for _, lb := range lle.GetLbEndpoints() {
			addrs = append(addrs, lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
		}
	}
	if !slices.Equal(addrs, []string{"10.1.3.1", "10.1.3.2"}) {
		t.Errorf("details endpoints = %v, want [10.1.3.1 10.1.3.2]", addrs)
	}
	expectConfig(t, c, snap)

	after := h.pushes()
	if after["eds"] != before["eds"]+1 {
		t.Errorf("pilot_xds_pushes{type=eds} went %v -> %v, want +1", before["eds"], after["eds"])
	}
	for _, typ := range []string{"cds", "lds", "rds"} {
		if after[typ] != before[typ] {
			t.Errorf("pilot_xds_pushes{type=%s} went %v -> %v on an endpoint-only change", typ, before[typ], after[typ])
		}
	}
	if got := h.metric("pilot_push_triggers", "endpoint"); got != 1 {
		t.Errorf("pilot_push_triggers{type=endpoint} = %v, want 1", got)
	}
}
