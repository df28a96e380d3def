package featuretests

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// A request can overtake a response the server has already queued for the same
// type: go-control-plane then drops the queued response (the request carries
// the nonce of the response before it, which is still the current one). The
// server must answer that request with the new version, not believe the proxy
// already holds what was dropped.
//
// Here the queued response is the route table released by an EDS ACK, and the
// overtaking request is an RDS request sent right behind that ACK (same
// subscription; Envoy sends such requests whenever its RDS subscription changes).
// Which of the two the server's stream loop takes first is random inside
// go-control-plane, so the test runs several rounds; the outcome must not depend
// on it: the new routes arrive exactly once either way.
func TestRequestOvertakingQueuedResponseStillGetsNewVersion(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	c := h.connect(clientNode())
	c.syncFull()
	c.expectNone(50 * time.Millisecond)

	in := *base
	for round := range 8 {
		// A new service on 9080: a new cluster (routes are held until its endpoints
		// are ACKed) and a changed route table 9080.
		name := fmt.Sprintf("ratings-%d", round)
		in.Services = append(slices.Clone(in.Services), service("default", name, fmt.Sprintf("10.96.1.%d", round+1), port("http", 9080)))
		in.EndpointSlices = append(slices.Clone(in.EndpointSlices), slice("default", name, "http", 9080, endpoint{fmt.Sprintf("10.1.6.%d", round+1), ""}))
		snap := h.update(&in)
		oldRoutes := c.state(RDS).version

		c.handle(c.expect(CDS)) // ACK, subscribe to the new endpoints
		eds := c.expect(EDS)
		c.ack(eds)                              // releases the held route table...
		c.subscribe(RDS, c.state(RDS).names...) // ...while this request is on its way

		rds := c.expect(RDS)
		if rds.GetVersionInfo() == oldRoutes {
			t.Fatalf("round %d: RDS carries the old version", round)
		}
		c.handle(rds)
		c.expectNone(50 * time.Millisecond)
		expectConfig(t, c, snap)
		if t.Failed() {
			t.FailNow()
		}
	}
}
