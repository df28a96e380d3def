package featuretests

import (
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/translate"
)

// RequestAuthentication depends on the proxy's namespace and labels: the
// selected sidecar and gateway get the dedicated JWKS cluster over CDS (the
// per-proxy parts of xds/generation.go) and exactly what translate.ForProxy
// builds; an unselected sidecar gets neither.
func TestRequestAuthenticationJWKSClusters(t *testing.T) {
	h := newHarness(t)
	in := bookinfo()
	in.Gateways = []*networking.Gateway{{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system"},
		Spec: networkingapi.Gateway{
			Selector: map[string]string{"istio": "ingressgateway"},
			Servers:  []*networkingapi.Server{{Port: &networkingapi.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}},
		},
	}}
	rule := []*securityapi.JWTRule{{Issuer: "iss", JwksUri: "https://198.18.0.77:8443/jwks"}}
	in.RequestAuthentications = []*security.RequestAuthentication{
		{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "default"},
			Spec: securityapi.RequestAuthentication{Selector: &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "client"}}, JwtRules: rule}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ingress", Namespace: "istio-system"},
			Spec: securityapi.RequestAuthentication{Selector: &typeapi.WorkloadSelector{MatchLabels: map[string]string{"istio": "ingressgateway"}}, JwtRules: rule}},
	}
	snap := h.start(in)
	jwks := translate.JWKSClusterName("198.18.0.77", 8443)

	c := h.connect(clientNode())
	c.syncFull()
	expectConfig(t, c, snap)
	if !c.has(CDS, jwks) {
		t.Errorf("selected sidecar has no cluster %s", jwks)
	}

	other := h.connect(sidecarNode("10.1.0.250", "other-0", "default", map[string]string{"app": "other"}))
	other.syncFull()
	expectConfig(t, other, snap)
	if other.has(CDS, jwks) {
		t.Errorf("unselected sidecar got cluster %s", jwks)
	}

	gw := h.connect(node("router", "10.1.0.100", "istio-ingressgateway-0", "istio-system", map[string]string{"istio": "ingressgateway"}))
	gw.syncFull()
	expectConfig(t, gw, snap)
	if !gw.has(CDS, jwks) {
		t.Errorf("selected gateway has no cluster %s", jwks)
	}
}
