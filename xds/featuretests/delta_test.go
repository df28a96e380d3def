package featuretests

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/xds"
)

// A delta client gets exactly the reference config, each resource with its
// own version, and is SYNCED on every type.
func TestDeltaInitialConfig(t *testing.T) {
	h := newHarness(t)
	snap := h.start(bookinfo())
	c := h.connectDelta(clientNode())
	c.syncFull()
	c.expectNone(quiet)
	expectConfigOf(t, c.node, c.config(), snap)
	for _, typeURL := range []string{CDS, EDS, LDS, RDS} {
		for name, held := range c.state(typeURL).resources {
			if held.version == "" {
				t.Errorf("%s %s came without a resource version", short(typeURL), name)
			}
		}
	}
	st, ok := h.syncStatus(c.node.GetId())
	if !ok {
		t.Fatal("the delta proxy is not in /debug/syncz")
	}
	if st.Protocol != "delta" {
		t.Errorf("syncz protocol = %q, want delta", st.Protocol)
	}
	for _, typ := range []string{"cds", "eds", "lds", "rds"} {
		if st.Types[typ].State != "SYNCED" {
			t.Errorf("%s is %+v, want SYNCED", typ, st.Types[typ])
		}
	}
}

// withDetailsEndpoints is base with a details EndpointSlice of the given pods.
func withDetailsEndpoints(base *model.Inputs, eps ...endpoint) *model.Inputs {
	in := *base
	in.EndpointSlices = slices.Clone(base.EndpointSlices)
	in.Pods = slices.Clone(base.Pods)
	for _, e := range eps {
		in.Pods = append(in.Pods, pod("default", e.pod, e.ip, map[string]string{"app": "details"}))
	}
	for i, es := range in.EndpointSlices {
		if es.Labels[discoveryv1.LabelServiceName] == "details" {
			in.EndpointSlices[i] = slice("default", "details", "http", 9080, eps...)
		}
	}
	return &in
}

// One endpoint change costs each proxy one ClusterLoadAssignment: the one that
// changed, in one EDS response, and nothing else.
func TestDeltaEndpointChangeSendsOneCLA(t *testing.T) {
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	var proxies []*deltaClient
	for i, ip := range []string{"10.1.9.1", "10.1.9.2", "10.1.9.3"} {
		c := h.connectDelta(sidecarNode(ip, "sleep-"+string(rune('a'+i)), "default", map[string]string{"app": "sleep"}))
		c.syncFull()
		proxies = append(proxies, c)
	}
	for _, c := range proxies {
		c.expectNone(quiet)
	}
	before := h.pushes()

	h.update(withDetailsEndpoints(base, endpoint{"10.1.3.1", "details-0"}, endpoint{"10.1.3.2", "details-1"}))

	details := "outbound|9080||details.default.svc.cluster.local"
	for _, c := range proxies {
		eds := c.expect(EDS)
		if got := deltaNames(eds); !slices.Equal(got, []string{details}) {
			t.Errorf("%s: EDS response carries %v, want only %s", c.node.GetId(), got, details)
		}
		if len(eds.GetRemovedResources()) != 0 {
			t.Errorf("%s: EDS response removes %v", c.node.GetId(), eds.GetRemovedResources())
		}
		c.handle(eds)
		c.expectNone(quiet)
		cla := c.resource(EDS, details).(*endpointv3.ClusterLoadAssignment)
		if n := len(cla.GetEndpoints()[0].GetLbEndpoints()); n != 2 {
			t.Errorf("%s: details has %d endpoints, want 2", c.node.GetId(), n)
		}
	}
	after := h.pushes()
	if after["eds"] != before["eds"]+3 {
		t.Errorf("pilot_xds_pushes{type=eds} went %v -> %v, want +3 (one per proxy)", before["eds"], after["eds"])
	}
	for _, typ := range []string{"cds", "lds", "rds"} {
		if after[typ] != before[typ] {
			t.Errorf("pilot_xds_pushes{type=%s} went %v -> %v on an endpoint-only change", typ, before[typ], after[typ])
		}
	}
}

// A deleted service: its cluster, its endpoints and its TCP listener are in
// removed_resources; nothing else is re-sent.
func TestDeltaRemovedService(t *testing.T) {
	h, base, c := syncedDeltaClient(t)

	in := *base
	in.Services = slices.DeleteFunc(slices.Clone(base.Services), func(s *corev1.Service) bool { return s.Name == "mysql" })
	in.EndpointSlices = slices.DeleteFunc(slices.Clone(base.EndpointSlices), func(es *discoveryv1.EndpointSlice) bool {
		return es.Labels[discoveryv1.LabelServiceName] == "mysql"
	})
	snap := h.update(&in)

	mysql := "outbound|3306||mysql.default.svc.cluster.local"
	cds := c.expect(CDS)
	if len(cds.GetResources()) != 0 || !slices.Equal(cds.GetRemovedResources(), []string{mysql}) {
		t.Errorf("CDS response: resources %v, removed %v; want none and [%s]", deltaNames(cds), cds.GetRemovedResources(), mysql)
	}
	c.handle(cds)
	sawEDS, sawLDS := false, false
	for !(sawEDS && sawLDS) {
		resp, err := c.tryRecv(waitTimeout)
		if err != nil {
			t.Fatalf("after the CDS removal: %v (received %v)", err, c.received)
		}
		switch resp.GetTypeUrl() {
		case EDS:
			sawEDS = true
			if len(resp.GetResources()) != 0 || !slices.Equal(resp.GetRemovedResources(), []string{mysql}) {
				t.Errorf("EDS response: resources %v, removed %v; want none and [%s]", deltaNames(resp), resp.GetRemovedResources(), mysql)
			}
		case LDS:
			sawLDS = true
			if len(resp.GetResources()) != 0 || !slices.Equal(resp.GetRemovedResources(), []string{"10.96.0.13_3306"}) {
				t.Errorf("LDS response: resources %v, removed %v; want none and [10.96.0.13_3306]", deltaNames(resp), resp.GetRemovedResources())
			}
		default:
			t.Errorf("unexpected %s response (%v, removed %v)", short(resp.GetTypeUrl()), deltaNames(resp), resp.GetRemovedResources())
		}
		c.handle(resp)
	}
	c.expectNone(quiet)
	expectConfigOf(t, c.node, c.config(), snap)
}

// A reconnecting Envoy lists what it holds (initial_resource_versions) and is
// sent only what differs: here one route table.
func TestDeltaReconnectSendsOnlyDifferences(t *testing.T) {
	h, base, c := syncedDeltaClient(t)
	held := map[string]map[string]string{}
	for _, typeURL := range []string{CDS, EDS, LDS, RDS} {
		held[typeURL] = c.versions(typeURL)
	}
	c.close()
	eventually(t, "the proxy is gone", func() bool { _, ok := h.syncStatus(c.node.GetId()); return !ok })

	in := *base
	in.VirtualServices = []*networking.VirtualService{reviewsTo("v2")}
	snap := h.update(&in)

	r := h.connectDelta(clientNode())
	r.state(CDS).resources = toHeld(c.state(CDS).resources)
	r.state(LDS).resources = toHeld(c.state(LDS).resources)
	r.subscribe(CDS, nil, held[CDS])
	r.subscribe(LDS, nil, held[LDS])
	for _, typeURL := range []string{CDS, LDS} {
		resp := r.expect(typeURL)
		if len(resp.GetResources()) != 0 || len(resp.GetRemovedResources()) != 0 {
			t.Errorf("%s on reconnect: resources %v, removed %v; want nothing (all held)", short(typeURL), deltaNames(resp), resp.GetRemovedResources())
		}
		r.ack(resp)
	}
	r.state(EDS).resources = toHeld(c.state(EDS).resources)
	r.state(RDS).resources = toHeld(c.state(RDS).resources)
	r.subscribe(EDS, sortedKeys(held[EDS]), held[EDS])
	r.subscribe(RDS, sortedKeys(held[RDS]), held[RDS])
	eds := r.expect(EDS)
	if len(eds.GetResources()) != 0 {
		t.Errorf("EDS on reconnect re-sent %v, all held", deltaNames(eds))
	}
	r.ack(eds)
	rds := r.expect(RDS)
	if got := deltaNames(rds); !slices.Equal(got, []string{"9080"}) {
		t.Errorf("RDS on reconnect sent %v, want only the changed table [9080]", got)
	}
	r.ack(rds)
	r.expectNone(quiet)
	expectConfigOf(t, r.node, r.config(), snap)
}

func toHeld(m map[string]deltaHeld) map[string]deltaHeld {
	out := map[string]deltaHeld{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// A NACK is recorded with the resource Envoy's message blames; the rejected
// version is never re-sent; the next change is sent whole.
func TestDeltaNACKNamesResource(t *testing.T) {
	h, base, c := syncedDeltaClient(t)

	in := *base
	in.VirtualServices = []*networking.VirtualService{reviewsTo("v2")}
	h.update(&in)
	bad := c.expect(RDS)
	msg := "Error adding/updating route configuration 9080: (simulated) unknown cluster"
	c.nack(bad, msg)
	c.expectNone(quiet)

	st, _ := h.syncStatus(c.node.GetId())
	rds := st.Types["rds"]
	if rds.State != "NACKED" || !slices.Equal(rds.NackedResources, []string{"9080"}) || rds.NackMessage != msg {
		t.Errorf("syncz rds = %+v; want NACKED naming [9080] with Envoy's message", rds)
	}
	if got := h.metric("pilot_total_xds_rejects", "rds"); got != 1 {
		t.Errorf("pilot_total_xds_rejects{type=rds} = %v, want 1", got)
	}
	if got := h.metricWith("pilot_xds_rds_reject", "err", msg); got != 1 {
		t.Errorf("pilot_xds_rds_reject{node, err=Envoy's message} = %v, want 1", got)
	}
	ch, err := h.change(h.version)
	if err != nil {
		t.Fatal(err)
	}
	if pc := ch.Proxies[c.node.GetId()]; pc.State != "NACKED" || !slices.Equal(pc.NackResources, []string{"9080"}) || pc.NackMessage != msg {
		t.Errorf("/debug/changes does not name the rejected route table: %+v", pc)
	}

	// The next change: everything the proxy watches of RDS, since after a
	// NACK we cannot know what it kept.
	in.VirtualServices = []*networking.VirtualService{reviewsTo("v1")}
	h.update(&in)
	again := c.expect(RDS)
	if got := deltaNames(again); len(got) == 0 {
		t.Error("no RDS after the next change")
	}
	c.handle(again)
	c.expectNone(quiet)
	st, _ = h.syncStatus(c.node.GetId())
	if st.Types["rds"].State != "SYNCED" {
		t.Errorf("rds after the fix = %+v, want SYNCED", st.Types["rds"])
	}
	if got := h.metricWith("pilot_xds_rds_reject", "node", c.node.GetId()); got != 0 {
		t.Errorf("pilot_xds_rds_reject still set after the proxy ACKed: %v", got)
	}
}

// Named subscriptions follow subscribe/unsubscribe: an unsubscribed CLA is
// not sent on a change; subscribed again, it comes at once.
func TestDeltaSubscribeUnsubscribe(t *testing.T) {
	h, base, c := syncedDeltaClient(t)
	details := "outbound|9080||details.default.svc.cluster.local"
	c.unsubscribe(EDS, details)
	c.expectNone(quiet)
	h.update(withDetailsEndpoints(base, endpoint{"10.1.3.1", "details-0"}, endpoint{"10.1.3.2", "details-1"}))
	c.expectNone(quiet)
	c.subscribe(EDS, []string{details}, nil)
	eds := c.expect(EDS)
	if got := deltaNames(eds); !slices.Equal(got, []string{details}) {
		t.Errorf("re-subscribing sent %v, want [%s]", got, details)
	}
	c.ack(eds)
	// A name that does not exist is reported removed, so Envoy stops waiting.
	c.subscribe(EDS, []string{"outbound|1||nope.default.svc.cluster.local"}, nil)
	eds = c.expect(EDS)
	if !slices.Equal(eds.GetRemovedResources(), []string{"outbound|1||nope.default.svc.cluster.local"}) {
		t.Errorf("unknown name: removed %v", eds.GetRemovedResources())
	}
}

// A change that adds a cluster goes out CDS, then EDS for it once subscribed,
// and only then LDS/RDS: no route points at a cluster still warming.
func TestDeltaOrderingMakeBeforeBreak(t *testing.T) {
	h, base, c := syncedDeltaClient(t)

	in := *base
	in.Services = append(slices.Clone(base.Services), service("default", "ratings", "10.96.0.15", port("http", 9080)))
	in.EndpointSlices = append(slices.Clone(base.EndpointSlices), slice("default", "ratings", "http", 9080, endpoint{"10.1.5.1", "ratings-0"}))
	mark := len(c.received)
	snap := h.update(&in)
	cds := c.expect(CDS)
	c.handle(cds) // subscribes to the new CLA
	eds := c.expect(EDS)
	if got := deltaNames(eds); !slices.Contains(got, "outbound|9080||ratings.default.svc.cluster.local") {
		t.Errorf("EDS after the new cluster carries %v", got)
	}
	c.handle(eds)
	c.syncUntil("listeners and routes", func() bool {
		return c.state(RDS).last != nil && slices.Contains(c.received[len(c.received)-1:], "rds")
	})
	rest := c.received[mark:]
	if rest[0] != "cds" || rest[1] != "eds" {
		t.Errorf("order after the change: %v, want cds, eds, then lds/rds", rest)
	}
	c.syncUntil("complete", c.complete)
	c.expectNone(quiet)
	expectConfigOf(t, c.node, c.config(), snap)
}

// Secrets over delta: a proxy mizzen bootstrapped gets `default` and `ROOTCA`
// on its stream; istio-agent's proxy gets them from the agent (sds-grpc), so
// its clusters point there and mizzen serves it no workload key.
func TestDeltaSecretsAndAgentSDS(t *testing.T) {
	ca := testCA(t)
	h := newHarness(t, func(o *xds.Options) {
		o.CA = func() *certs.CA { return ca }
		o.InsecureDevIdentity = true
		o.TrustDomain = "cluster.local"
	})
	in := bookinfo()
	h.start(in)

	plain := h.connectDelta(mizzenNode("sidecar", "10.1.9.1", "sleep-0", "default", map[string]string{"app": "sleep"}, "127.0.0.1:15000"))
	plain.syncFull()
	plain.subscribe(resourcev3.SecretType, []string{"default", "ROOTCA"}, nil)
	sds := plain.expect(resourcev3.SecretType)
	if got := deltaNames(sds); !slices.Equal(got, []string{"ROOTCA", "default"}) {
		t.Errorf("secrets for a mizzen-bootstrapped proxy: %v", got)
	}
	plain.ack(sds)
	if src := sdsSourceOf(t, plain.resource(CDS, "outbound|9080||reviews.default.svc.cluster.local")); src != "ads" {
		t.Errorf("a mizzen-bootstrapped proxy's cluster takes its certificate from %s, want ads", src)
	}

	agent := h.connectDelta(sidecarNode("10.1.9.2", "sleep-1", "default", map[string]string{"app": "sleep"}))
	agent.syncFull()
	if src := sdsSourceOf(t, agent.resource(CDS, "outbound|9080||reviews.default.svc.cluster.local")); src != "sds-grpc" {
		t.Errorf("an istio-agent proxy's cluster takes its certificate from %s, want sds-grpc", src)
	}
	agent.subscribe(resourcev3.SecretType, []string{"default"}, nil)
	agent.expectNone(quiet) // mizzen holds no key for it: the agent made its own
	if st, _ := h.syncStatus(agent.node.GetId()); st.Types["sds"].State != "" {
		t.Errorf("syncz lists SDS for an istio-agent proxy, whose secrets the agent serves: %+v", st.Types["sds"])
	}
}

// sdsSourceOf says where a cluster's mTLS certificate comes from: "ads",
// the name of a gRPC cluster, or "" for no mTLS.
func sdsSourceOf(t *testing.T, m any) string {
	t.Helper()
	c, ok := m.(*clusterv3.Cluster)
	if !ok {
		return ""
	}
	ts := c.GetTransportSocket()
	if ts == nil && len(c.GetTransportSocketMatches()) > 0 {
		ts = c.GetTransportSocketMatches()[0].GetTransportSocket() // auto mTLS: the tlsMode=istio match
	}
	if ts == nil {
		return ""
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		t.Fatal(err)
	}
	sc := ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()
	if len(sc) == 0 {
		return ""
	}
	if sc[0].GetSdsConfig().GetAds() != nil {
		return "ads"
	}
	return sc[0].GetSdsConfig().GetApiConfigSource().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName()
}

// syncedClient starts a harness on bookinfo and a SotW client of the client
// pod that holds its full config and expects nothing more.
func syncedClient(t *testing.T) (*harness, *model.Inputs, *client) {
	t.Helper()
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	c := h.connect(clientNode())
	c.syncFull()
	c.expectNone(quiet)
	return h, base, c
}

// syncedDeltaClient starts a harness on bookinfo and a delta client of the
// client pod that holds its full config and expects nothing more.
func syncedDeltaClient(t *testing.T) (*harness, *model.Inputs, *deltaClient) {
	t.Helper()
	h := newHarness(t)
	base := bookinfo()
	h.start(base)
	c := h.connectDelta(clientNode())
	c.syncFull()
	c.expectNone(quiet)
	return h, base, c
}
