package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestClusterChangeDoesNotStallOnEndpoints changes a DestinationRule so that
// existing clusters are redefined while their endpoints stay the same. Envoy
// re-warms a redefined EDS cluster and waits for its endpoints; mizzen must
// send them again even though they did not change, or the cluster would hang
// warming (and its traffic stay on the old definition) until Envoy's initial
// fetch timeout.
func TestClusterChangeDoesNotStallOnEndpoints(t *testing.T) {
	b := rig.Bookinfo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.WriteConfig(t, "reviews-split.yaml", reviewsVS("reviews-split", allTo("v2")))
	waitForVersion(t, ctx, b, "v2")

	b.WriteConfig(t, "destinationrules.yaml", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`)
	start := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	err := rig.Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		raw, err := b.Gateway.ConfigDumpRaw(ctx, false)
		if err != nil {
			return err
		}
		dump, err := rig.ParseConfigDump(raw)
		if err != nil {
			return err
		}
		c, ok := dump.DynamicActiveClusters()["outbound|9080|v2|reviews.default.svc.cluster.local"]
		// ROUND_ROBIN is the proto default, so it is absent from the dump.
		if _, set := c["lb_policy"]; !ok || set {
			return fmt.Errorf("v2 cluster not yet active with ROUND_ROBIN (warming: %d)", len(dump.DynamicWarmingClusters()))
		}
		if n := len(dump.DynamicWarmingClusters()); n > 0 {
			return fmt.Errorf("%d clusters still warming", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the DestinationRule change: %v", err)
	}
	t.Logf("redefined clusters active after %s", time.Since(start).Round(time.Millisecond))
	r, err := b.Get(ctx, reviewsHost, "/", nil)
	if err != nil || r.Status != 200 || r.Version != "v2" {
		t.Fatalf("reviews after the change: %v %+v", err, r)
	}
}
