package xds

import (
	"io"
	"log/slog"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The cache side of a redefined cluster: the EDS response that follows the CDS
// one re-sends its endpoints; if that response is dropped before it is written
// (a request of the proxy overtook it in go-control-plane's ordered ADS loop),
// the request is answered in full although it names the version the dropped
// response carried. Driven by hand, so the drop happens every time.
func TestRewarmSurvivesADroppedResponse(t *testing.T) {
	c := newProxyCache(slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()), newChangeLog(nil))
	const id = "sidecar~10.1.0.9~client-0.default~default.svc.cluster.local"
	cn := &conn{id: id}
	c.conns[id] = cn
	clusters := func(timeout time.Duration) *resourceSet {
		p, err := newPart([]*clusterv3.Cluster{
			{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}, ConnectTimeout: durationpb.New(timeout)},
			{Name: "b", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}},
		}, clusterName)
		if err != nil {
			t.Fatal(err)
		}
		return newResourceSet(p)
	}
	eps, err := newPart([]*endpointv3.ClusterLoadAssignment{{ClusterName: "a"}, {ClusterName: "b"}}, claName)
	if err != nil {
		t.Fatal(err)
	}
	cn.types[cdsType].set, cn.types[edsType].set = clusters(time.Second), newResourceSet(eps)

	ch := make(chan cache.Response, numTypes)
	nonce := 0
	request := func(t typeIndex, version, respNonce string, names ...string) {
		if _, err := c.CreateWatch(&discovery.DiscoveryRequest{Node: &core.Node{Id: id}, TypeUrl: typeURLs[t],
			VersionInfo: version, ResponseNonce: respNonce, ResourceNames: names}, nil, ch); err != nil {
			panic(err)
		}
	}
	// next takes the next queued response; written says whether the stream
	// wrote it (else go-control-plane dropped it).
	next := func(written bool) *discovery.DiscoveryResponse {
		t.Helper()
		select {
		case r := <-ch:
			out, _ := r.GetDiscoveryResponse()
			nonce++
			out.Nonce = string(rune('0' + nonce))
			if written {
				c.responseWritten(id, out)
			}
			return out
		default:
			t.Fatalf("no response queued")
			return nil
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case r := <-ch:
			out, _ := r.GetDiscoveryResponse()
			t.Fatalf("%s: unexpected %s response %v", what, out.GetTypeUrl(), out.GetResources())
		default:
		}
	}

	request(cdsType, "", "")
	cds := next(true)
	request(edsType, "", "", "a", "b")
	eds := next(true)
	request(cdsType, cds.GetVersionInfo(), cds.GetNonce())
	request(edsType, eds.GetVersionInfo(), eds.GetNonce(), "a", "b")
	none("after the ACKs")

	// Cluster a is redefined; no endpoint changes.
	c.install(cn, nil, [numTypes]*resourceSet{clusters(2 * time.Second), cn.types[edsType].set, newResourceSet(), newResourceSet()}, nil, &change{At: time.Now(), Proxies: map[string]*proxyChange{}})
	cds2 := next(true)
	eds2 := next(false) // dropped: the proxy's re-warming request overtakes it
	if eds2.GetVersionInfo() != eds.GetVersionInfo() || len(eds2.GetResources()) != 1 {
		t.Fatalf("EDS after the redefinition: version %s (was %s), %d resources; want the same version re-sending a's endpoints",
			eds2.GetVersionInfo(), eds.GetVersionInfo(), len(eds2.GetResources()))
	}
	request(edsType, eds.GetVersionInfo(), eds.GetNonce(), "a", "b")
	eds3 := next(true)
	if len(eds3.GetResources()) == 0 {
		t.Fatalf("the request that overtook the dropped EDS response got no endpoints")
	}
	request(cdsType, cds2.GetVersionInfo(), cds2.GetNonce())
	request(edsType, eds3.GetVersionInfo(), eds3.GetNonce(), "a", "b")
	none("after the proxy ACKed the re-sent endpoints")
}
