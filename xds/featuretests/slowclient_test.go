package featuretests

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// bigMesh is bookinfo plus n services on 9080, so one proxy's config is far
// larger than an HTTP/2 flow-control window.
func bigMesh(n int) *model.Inputs {
	in := *bookinfo()
	in.Services = slices.Clone(in.Services)
	in.EndpointSlices = slices.Clone(in.EndpointSlices)
	for i := range n {
		name := fmt.Sprintf("filler-%03d", i)
		in.Services = append(in.Services, service("default", name, fmt.Sprintf("10.97.%d.%d", i/250, i%250+1), port("http", 9080)))
		in.EndpointSlices = append(in.EndpointSlices, slice("default", name, "http", 9080, endpoint{fmt.Sprintf("10.3.%d.%d", i/250, i%250+1), ""}))
	}
	return &in
}

// A proxy that never reads its stream does not hold up pushes to the others: a
// change still reaches a healthy proxy within a second, every time.
func TestStuckStreamDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t)
	base := bigMesh(640)
	snap := h.start(base)

	stuckNode := sidecarNode("10.1.0.50", "stuck-0", "default", map[string]string{"app": "stuck"})
	p, err := model.ParseProxy(stuckNode.GetId(), stuckNode.GetMetadata().AsMap())
	if err != nil {
		t.Fatal(err)
	}
	out := translate.ForProxy(snap, p)
	size := 0
	for _, c := range out.Clusters {
		size += proto.Size(c)
	}
	// The client's HTTP/2 stream window is a static 64 KiB and it never reads, so
	// the server's send of a CDS response this big blocks for good: the stuck
	// stream's server side stays blocked for the rest of the test.
	if size < 80*1024 {
		t.Fatalf("fixture too small: CDS is %d bytes; it alone must overflow the stuck client's 64 KiB stream window", size)
	}

	// The stuck proxy asks for everything and never reads a byte.
	stuck := h.connect(stuckNode, neverRead())
	var clusterNames []string
	for _, cla := range out.Endpoints {
		clusterNames = append(clusterNames, cla.GetClusterName())
	}
	stuck.start()
	stuck.subscribe(EDS, clusterNames...)
	stuck.subscribe(RDS, "8000", "9080")
	eventually(t, "the server has answered the stuck proxy's CDS request", func() bool {
		st, ok := h.syncStatus(stuckNode.GetId())
		return ok && st.Types["cds"].Sent != ""
	})

	c := h.connect(clientNode())
	c.syncFull()
	for i, subset := range []string{"v2", "v1", "v2"} {
		in := *base
		vs := reviewsTo(subset)
		vs.Spec.Http[0].Name = fmt.Sprintf("change-%d", i)
		in.VirtualServices = []*networking.VirtualService{vs}
		start := time.Now()
		h.update(&in)
		rds := c.expect(RDS)
		took := time.Since(start)
		if took > time.Second {
			t.Fatalf("change %d took %v to reach a healthy proxy while another proxy's stream is stuck, want < 1s", i, took)
		}
		t.Logf("change %d reached the healthy proxy in %v", i, took)
		c.handle(rds)
	}
	c.expectNone(quiet)
	expectConfig(t, c, h.snap)

	if _, ok := h.syncStatus(stuckNode.GetId()); !ok {
		t.Error("the stuck proxy was disconnected; it should just stay stuck")
	}
}
