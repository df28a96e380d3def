package featuretests

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A DestinationRule in the client's namespace for a host of another namespace
// (Istio's egress-gateway task: a subset of istio-egressgateway.istio-system
// defined in default) shapes that client's clusters and endpoints, over xDS
// as in translate.ForProxy.
func TestClientNamespaceDestinationRule(t *testing.T) {
	h := newHarness(t)
	in := bookinfo()
	in.Services = append(in.Services, service("istio-system", "istio-egressgateway", "10.96.0.50", port("http2", 80)))
	in.EndpointSlices = append(in.EndpointSlices, slice("istio-system", "istio-egressgateway", "http2", 8080, endpoint{"10.1.9.1", "istio-egressgateway-0"}))
	in.Pods = append(in.Pods, pod("istio-system", "istio-egressgateway-0", "10.1.9.1", map[string]string{"istio": "egressgateway"}))
	in.DestinationRules = append(in.DestinationRules, &networking.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Name: "egressgateway-for-external", Namespace: "default"},
		Spec: networkingapi.DestinationRule{
			Host:    "istio-egressgateway.istio-system.svc.cluster.local",
			Subsets: []*networkingapi.Subset{{Name: "external"}},
		},
	})
	snap := h.start(in)
	c := h.connect(clientNode())
	c.syncFull()
	expectConfig(t, c, snap)
	if !c.has(CDS, "outbound|80|external|istio-egressgateway.istio-system.svc.cluster.local") {
		t.Error("no cluster for the subset the client namespace's DestinationRule defines")
	}
	if !c.has(EDS, "outbound|80|external|istio-egressgateway.istio-system.svc.cluster.local") {
		t.Error("no endpoints for that subset")
	}
}
