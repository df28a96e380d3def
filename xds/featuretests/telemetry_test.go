package featuretests

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// mizzenNode is a proxy bootstrapped straight to mizzen (no istio-agent, so
// no ISTIO_VERSION) with its admin at admin.
func mizzenNode(kind, ip, pod, ns string, labels map[string]string, admin string) *core.Node {
	n := node(kind, ip, pod, ns, labels)
	m := n.GetMetadata().AsMap()
	delete(m, "ISTIO_VERSION")
	m["MIZZEN_ADMIN_ADDRESS"] = admin
	md, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	n.Metadata = md
	return n
}

func meshConfigMap(mesh string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"}, Data: map[string]string{"mesh": mesh}}
}

// The stats listener and the telemetry clusters reach proxies through their
// own parts of xds/generation.go (per translate.TelemetryKey), and the mesh's
// access log and tracing through the shared listener parts, exactly as
// translate.ForProxy builds them; an istio-agent proxy gets neither the
// listener nor the clusters (its bootstrap has them); a mesh config change
// reaches everyone.
func TestTelemetryConfig(t *testing.T) {
	h := newHarness(t)
	in := bookinfo()
	in.Gateways = []*networking.Gateway{{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system"},
		Spec: networkingapi.Gateway{
			Selector: map[string]string{"istio": "ingressgateway"},
			Servers:  []*networkingapi.Server{{Port: &networkingapi.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}},
		},
	}}
	in.ConfigMaps = []*corev1.ConfigMap{meshConfigMap(`
accessLogFile: /dev/stdout
defaultConfig: {tracing: {zipkin: {address: "198.18.0.9:9411"}}}`)}
	snap := h.start(in)

	c := h.connect(mizzenNode("sidecar", clientIP, "client-0", "default", map[string]string{"app": "client"}, clientIP+":15000"))
	c.syncFull()
	expectConfig(t, c, snap)
	for _, want := range []struct{ typ, name string }{{LDS, translate.StatsListener}, {CDS, translate.StatsCluster}, {CDS, translate.ZipkinCluster}} {
		if !c.has(want.typ, want.name) {
			t.Errorf("sidecar has no %s %s", short(want.typ), want.name)
		}
	}
	hcm := outboundHCM(t, c, "0.0.0.0_9080")
	if len(hcm.GetAccessLog()) != 1 || hcm.GetTracing() == nil {
		t.Errorf("0.0.0.0_9080 HCM: access logs %v, tracing %v", hcm.GetAccessLog(), hcm.GetTracing())
	}

	gw := h.connect(mizzenNode("router", "10.1.0.100", "istio-ingressgateway-0", "istio-system", map[string]string{"istio": "ingressgateway"}, "127.0.0.1:15000"))
	gw.syncFull()
	expectConfig(t, gw, snap)
	if !gw.has(LDS, translate.StatsListener) {
		t.Error("gateway has no stats listener")
	}

	agent := h.connect(sidecarNode("10.1.0.250", "other-0", "default", map[string]string{"app": "other"}))
	agent.syncFull()
	expectConfig(t, agent, snap)
	if agent.has(LDS, translate.StatsListener) || agent.has(CDS, translate.StatsCluster) || agent.has(CDS, translate.ZipkinCluster) {
		t.Error("istio-agent proxy got the stats listener or telemetry clusters its bootstrap already has")
	}

	// Access logs off, tracing off: the listeners change, the zipkin cluster goes.
	in.ConfigMaps = []*corev1.ConfigMap{meshConfigMap("enableTracing: false")}
	snap = h.update(in)
	c.syncUntil("the zipkin cluster is gone", func() bool { return !c.has(CDS, translate.ZipkinCluster) })
	c.syncUntil("the access log is gone", func() bool {
		return c.has(LDS, "0.0.0.0_9080") && len(outboundHCM(t, c, "0.0.0.0_9080").GetAccessLog()) == 0
	})
	expectConfig(t, c, snap)
	p, _ := model.ParseProxy(c.node.GetId(), c.node.GetMetadata().AsMap())
	if hcm := outboundHCM(t, c, "0.0.0.0_9080"); hcm.GetTracing() != nil || p.AdminAddress != clientIP+":15000" {
		t.Errorf("tracing %v after enableTracing: false; admin %q", hcm.GetTracing(), p.AdminAddress)
	}
}

func outboundHCM(t *testing.T, c *client, listener string) *hcmv3.HttpConnectionManager {
	t.Helper()
	l, _ := c.resource(LDS, listener).(*listenerv3.Listener)
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			m := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig().UnmarshalTo(m) == nil {
				return m
			}
		}
	}
	t.Fatalf("listener %s has no HTTP connection manager", listener)
	return nil
}
