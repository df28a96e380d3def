package featuretests

import (
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// withRatings adds a ratings service on the given HTTP ports, with one endpoint.
func withRatings(in *model.Inputs, ports ...int32) *model.Inputs {
	out := *in
	var sps []corev1.ServicePort
	var eps []discoveryv1.EndpointPort
	for i, p := range ports {
		name := "http"
		if i > 0 {
			name = "http-" + strconv.Itoa(int(p))
		}
		sps = append(sps, port(name, p))
		eps = append(eps, discoveryv1.EndpointPort{Name: &name, Port: &ports[i]})
	}
	out.Services = append(slices.Clone(in.Services), service("default", "ratings", "10.96.0.20", sps...))
	es := slice("default", "ratings", "http", ports[0], endpoint{"10.1.5.1", "ratings-0"})
	es.Ports = eps
	out.EndpointSlices = append(slices.Clone(in.EndpointSlices), es)
	out.Pods = append(slices.Clone(in.Pods), pod("default", "ratings-0", "10.1.5.1", map[string]string{"app": "ratings"}))
	return &out
}

// A change that adds a service reaches an Envoy-like client as CDS, then EDS,
// then LDS, then RDS: clusters before the endpoints that fill them, both before
// the listeners and routes that point at them.
func TestChangeArrivesInCDSEDSLDSRDSOrder(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	c := h.connect(clientNode())
	c.syncFull()

	// ratings on 9080 (changes route table 9080, already subscribed) and on a new
	// port 7070 (a new listener 0.0.0.0_7070 and a new route table 7070).
	snap := h.update(withRatings(base, 9080, 7070))
	c.received = nil
	c.syncUntil("it holds the new route table 7070", func() bool {
		return c.has(RDS, "7070") && c.has(CDS, "outbound|7070||ratings.default.svc.cluster.local") && c.complete()
	})
	c.expectNone(quiet)

	// Collapse repeats (route tables may come twice: 9080 first, 7070 after the
	// client subscribed to it) and check the order of first arrivals.
	var order []string
	for _, typ := range c.received {
		if len(order) == 0 || order[len(order)-1] != typ {
			order = append(order, typ)
		}
	}
	if !slices.Equal(order, []string{"cds", "eds", "lds", "rds"}) {
		t.Fatalf("responses arrived as %v, want cds, eds, lds, rds (collapsed: %v)", c.received, order)
	}
	expectConfig(t, c, snap)
}

// Make before break: listeners and routes of a change that adds clusters wait
// until the client has ACKed endpoints for the new clusters.
func TestRoutesWaitForNewClustersEndpointsACK(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	c := h.connect(clientNode())
	c.syncFull()
	oldRoutes := c.state(RDS).version

	// ratings on 9080 only: a new cluster and a changed route table 9080.
	snap := h.update(withRatings(base, 9080))
	ratings := translate.OutboundClusterName(9080, "", "ratings.default.svc.cluster.local")

	cds := c.expect(CDS)
	if !slices.Contains(edsNames(t, cds), ratings) {
		t.Fatalf("CDS update lacks %s: %v", ratings, names(t, cds))
	}
	c.handle(cds) // ACK, and subscribe to the new cluster's endpoints
	eds := c.expect(EDS)
	if !slices.Contains(names(t, eds), ratings) {
		t.Fatalf("EDS response lacks %s: %v", ratings, names(t, eds))
	}

	// Do not ACK the endpoints yet: routes must not move.
	c.expectNone(quiet)
	if st, _ := h.syncStatus(c.node.GetId()); st.Types["rds"].State != "STALE" || st.Types["rds"].Sent != oldRoutes {
		t.Errorf("while routes are held, rds status = %+v, want STALE with the old version sent", st.Types["rds"])
	}

	c.handle(eds) // ACK the endpoints
	rds := c.expect(RDS)
	if rds.GetVersionInfo() == oldRoutes {
		t.Fatalf("RDS after the EDS ACK carries the old version %s", oldRoutes)
	}
	c.handle(rds)
	c.expectNone(quiet)
	if !c.complete() {
		t.Fatal("client is not complete")
	}
	expectConfig(t, c, snap)
}
