package featuretests

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/translate"
)

// An ingress gateway proxy (router~…, istio=ingressgateway) bound by a Gateway
// on port 80 and a VirtualService gets the bound listener 0.0.0.0_80 and the
// route table http.80 sending traffic to productpage.
func TestGatewayGetsListenerAndRoutes(t *testing.T) {
	h := newHarness(t)
	in := bookinfo()
	in.Gateways = []*networking.Gateway{{
		ObjectMeta: metav1.ObjectMeta{Name: "bookinfo-gateway", Namespace: "default"},
		Spec: networkingapi.Gateway{
			Selector: map[string]string{"istio": "ingressgateway"},
			Servers: []*networkingapi.Server{{
				Port:  &networkingapi.Port{Number: 80, Name: "http", Protocol: "HTTP"},
				Hosts: []string{"*"},
			}},
		},
	}}
	in.VirtualServices = append(in.VirtualServices, &networking.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Namespace: "default"},
		Spec: networkingapi.VirtualService{
			Hosts:    []string{"*"},
			Gateways: []string{"bookinfo-gateway"},
			Http: []*networkingapi.HTTPRoute{{
				Match: []*networkingapi.HTTPMatchRequest{{Uri: &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Prefix{Prefix: "/"}}}},
				Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{
					Host: "productpage", Port: &networkingapi.PortSelector{Number: 9080},
				}}},
			}},
		},
	})
	snap := h.start(in)

	gw := h.connect(node("router", "10.1.0.100", "istio-ingressgateway-0", "istio-system", map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}))
	gw.syncFull()
	gw.expectNone(quiet)
	expectConfig(t, gw, snap)

	if got := sortedKeys(gw.state(LDS).resources); len(got) != 1 || got[0] != "0.0.0.0_80" {
		t.Fatalf("gateway listeners = %v, want [0.0.0.0_80]", got)
	}
	l := gw.resource(LDS, "0.0.0.0_80").(*listenerv3.Listener)
	if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "0.0.0.0" || sa.GetPortValue() != 80 {
		t.Errorf("listener address = %v, want 0.0.0.0:80", sa)
	}
	if l.GetBindToPort() != nil && !l.GetBindToPort().GetValue() {
		t.Error("gateway listener does not bind its port")
	}
	if got := gw.state(RDS).names; len(got) != 1 || got[0] != "http.80" {
		t.Fatalf("gateway RDS subscription = %v, want [http.80]", got)
	}
	rc := gw.resource(RDS, "http.80").(*routev3.RouteConfiguration)
	want := translate.OutboundClusterName(9080, "", "productpage.default.svc.cluster.local")
	found := false
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute().GetCluster() == want {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("route table http.80 has no route to %s", want)
	}

	// A sidecar in the same mesh gets no gateway config.
	c := h.connect(clientNode())
	c.syncFull()
	if c.has(RDS, "http.80") {
		t.Error("a sidecar got the gateway's route table")
	}
}
