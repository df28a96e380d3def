package model

import (
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func portGateway(ns, name string, age int, selector map[string]string, servers ...*networkingapi.Server) *networking.Gateway {
	return &networking.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(age) * time.Hour))},
		Spec: networkingapi.Gateway{Selector: selector, Servers: servers},
	}
}

func portServer(number uint32, protocol string, tls *networkingapi.ServerTLSSettings) *networkingapi.Server {
	return &networkingapi.Server{Port: &networkingapi.Port{Number: number, Name: strings.ToLower(protocol), Protocol: protocol}, Hosts: []string{"*"}, Tls: tls}
}

func portConflicts(snap *Snapshot) []ConfigError {
	var out []ConfigError
	for _, e := range snap.Errors {
		if e.Code == "GatewayPortProtocolConflict" {
			out = append(out, e)
		}
	}
	return out
}

// Without Pods, Gateways with equal selectors share a workload; an HTTPS
// server of another Gateway on a plain-HTTP port is the one not served,
// whatever istiod would pick, and the message says which istiod keeps.
func TestGatewayPortProtocolsWithoutPods(t *testing.T) {
	ingress := map[string]string{"istio": "ingressgateway"}
	simple := &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE, CredentialName: "cert"}
	snap := Build(&Inputs{Gateways: []*networking.Gateway{
		portGateway("shop", "secure", 0, ingress, portServer(443, "HTTPS", simple)),
		portGateway("shop", "plain", 1, map[string]string{"istio": "ingressgateway"}, portServer(443, "HTTP", nil), portServer(80, "HTTP", nil)),
		portGateway("shop", "grpc", 2, ingress, portServer(80, "GRPC", nil)), // HTTP too: merged, no conflict
		portGateway("shop", "other", 3, map[string]string{"istio": "ingressgateway", "x": "y"}, portServer(80, "TCP", nil)),
	}}, 1)
	got := portConflicts(snap)
	if len(got) != 1 {
		t.Fatalf("conflicts = %v, want one (shop/secure)", got)
	}
	e := got[0]
	if e.Name != "secure" || e.Field != "spec.servers[0].port" || !e.Warning ||
		!strings.Contains(e.Message, "port 443 is also claimed by Gateway shop/plain (spec.servers[0], HTTP)") ||
		!strings.Contains(e.Message, "this HTTPS server is not served") ||
		!strings.Contains(e.Message, "istiod keeps this one instead") {
		t.Errorf("conflict = %+v", e)
	}
}

// With Pods, Gateways share a workload when one Pod matches both selectors,
// whatever the selectors look like.
func TestGatewayPortProtocolsByPod(t *testing.T) {
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name, Labels: labels}}
	}
	in := &Inputs{
		Pods: []*corev1.Pod{
			pod("ingress-0", map[string]string{"istio": "ingressgateway", "app": "edge"}),
			pod("egress-0", map[string]string{"istio": "egressgateway"}),
		},
		Gateways: []*networking.Gateway{
			portGateway("shop", "tcp", 0, map[string]string{"app": "edge"}, portServer(9000, "TCP", nil)),
			portGateway("shop", "http", 1, map[string]string{"istio": "ingressgateway"}, portServer(9000, "HTTP", nil)),
			portGateway("shop", "egress", 2, map[string]string{"istio": "egressgateway"}, portServer(9000, "TCP", nil)),
		},
	}
	got := portConflicts(Build(in, 1))
	if len(got) != 1 || got[0].Name != "tcp" ||
		!strings.Contains(got[0].Message, "for the same gateway workload (Pod istio-system/ingress-0)") ||
		!strings.Contains(got[0].Message, "this TCP server is not served") {
		t.Errorf("conflicts = %+v, want one on shop/tcp naming the shared Pod", got)
	}
}
