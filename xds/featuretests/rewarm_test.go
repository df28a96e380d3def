package featuretests

import (
	"slices"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// A DestinationRule change that redefines EDS clusters without adding any
// (here: a connection pool on reviews) changes no endpoint, and Envoy asks for
// no new ClusterLoadAssignment name. Envoy still warms each redefined cluster
// afresh and waits for its endpoints (or for its 15 s initial fetch timeout),
// so the server must follow the CDS response with an EDS response carrying
// those clusters' endpoints again — and only those.
func TestRedefinedClustersGetTheirEndpointsAgain(t *testing.T) {
	h, base, c := syncedClient(t)
	edsVersion := c.state(EDS).version

	in := *base
	dr := base.DestinationRules[0].DeepCopy()
	dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{ConnectionPool: &networkingapi.ConnectionPoolSettings{
		Tcp: &networkingapi.ConnectionPoolSettings_TCPSettings{MaxConnections: 1},
	}}
	in.DestinationRules = []*networking.DestinationRule{dr}
	snap := h.update(&in)

	cds := c.expect(CDS)
	edsBefore := slices.Clone(c.state(EDS).names)
	c.handle(cds)
	if !slices.Equal(edsBefore, c.state(EDS).names) {
		t.Fatalf("the EDS subscription changed (%v → %v); this test is about redefined clusters only", edsBefore, c.state(EDS).names)
	}
	eds := c.expect(EDS)
	got := names(t, eds)
	want := []string{
		"outbound|9080|v1|reviews.default.svc.cluster.local",
		"outbound|9080|v2|reviews.default.svc.cluster.local",
		"outbound|9080||reviews.default.svc.cluster.local",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("EDS after the redefinition carries %v, want exactly the redefined clusters %v", got, want)
	}
	if eds.GetVersionInfo() != edsVersion {
		t.Errorf("EDS version %s → %s: endpoints did not change", edsVersion, eds.GetVersionInfo())
	}
	c.handle(eds)
	c.expectNone(quiet)
	expectConfig(t, c, snap)

	// An unrelated change after that (a VirtualService) sends no EDS at all.
	in2 := in
	in2.VirtualServices = []*networking.VirtualService{reviewsTo("v2")}
	snap = h.update(&in2)
	c.handle(c.expect(RDS))
	c.expectNone(quiet)
	expectConfig(t, c, snap)
}

// Envoy re-sends its unchanged EDS subscription when it re-warms a cluster,
// with the nonce of the EDS response before the re-sent endpoints; that request
// must not get in the way of the endpoints. Here the re-sent endpoints are
// queued behind a CDS response that answers an ACK (not a push): the client
// holds back its ACKs of a CDS and an EDS response until the next
// DestinationRule change is in, ACKs the EDS one (nothing new for it) and then
// the CDS one, which gets the new clusters and, behind them, the endpoints.
// (When the request overtakes the queued response, go-control-plane drops the
// response; that case is driven by hand in xds.TestRewarmSurvivesADroppedResponse,
// as here the stream loop practically always writes the response first.)
func TestRedefinedClustersEndpointsFollowACDSAnswerToAnACK(t *testing.T) {
	h, base, c := syncedClient(t)
	reviews := "outbound|9080||reviews.default.svc.cluster.local"
	redefine := func(in *model.Inputs, maxConnections int32) *model.Snapshot {
		dr := base.DestinationRules[0].DeepCopy()
		dr.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{ConnectionPool: &networkingapi.ConnectionPoolSettings{
			Tcp: &networkingapi.ConnectionPoolSettings_TCPSettings{MaxConnections: maxConnections},
		}}
		in.DestinationRules = []*networking.DestinationRule{dr}
		return h.update(in)
	}

	in := *base
	for round := range 4 {
		redefine(&in, int32(2*round+1))
		cds1, eds1 := c.expect(CDS), c.expect(EDS)
		snap := redefine(&in, int32(2*round+2)) // nothing to send yet: no watch is parked
		c.ack(eds1)                             // parks the EDS watch
		c.ack(cds1)                             // → the new clusters, then their endpoints, queued...
		c.subscribe(EDS, c.state(EDS).names...) // ...while this re-warming request is on its way

		c.handle(c.expect(CDS))
		eds := c.expect(EDS)
		if !slices.Contains(names(t, eds), reviews) {
			t.Fatalf("round %d: EDS after the redefinition carries %v, not %s", round, names(t, eds), reviews)
		}
		c.handle(eds)
		c.expectNone(quiet)
		expectConfig(t, c, snap)
		if t.Failed() {
			t.FailNow()
		}
	}
}
