package model

import (
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

func TestServerKind(t *testing.T) {
	tlsMode := func(m networkingapi.ServerTLSSettings_TLSmode) *networkingapi.ServerTLSSettings {
		return &networkingapi.ServerTLSSettings{Mode: m}
	}
	for _, c := range []struct {
		protocol string
		tls      *networkingapi.ServerTLSSettings
		want     GatewayServerKind
	}{
		{"HTTP", nil, ServerHTTP},
		{"HTTP", &networkingapi.ServerTLSSettings{HttpsRedirect: true}, ServerHTTP},
		{"GRPC", nil, ServerHTTP},
		{"HTTPS", tlsMode(networkingapi.ServerTLSSettings_SIMPLE), ServerHTTPS},
		{"HTTPS", tlsMode(networkingapi.ServerTLSSettings_ISTIO_MUTUAL), ServerHTTPS},
		{"HTTPS", tlsMode(networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL), ServerHTTPS},
		// Istio's default tls.mode is PASSTHROUGH.
		{"HTTPS", &networkingapi.ServerTLSSettings{CredentialName: "c"}, ServerPassthrough},
		{"TLS", tlsMode(networkingapi.ServerTLSSettings_PASSTHROUGH), ServerPassthrough},
		{"TLS", tlsMode(networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH), ServerAutoPassthrough},
		{"HTTPS", tlsMode(networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH), ServerUnsupported},
		{"TLS", tlsMode(networkingapi.ServerTLSSettings_MUTUAL), ServerTLSTerminated},
		{"TCP", tlsMode(networkingapi.ServerTLSSettings_SIMPLE), ServerTLSTerminated},
		{"TCP", nil, ServerTCP},
		{"MONGO", nil, ServerTCP},
		{"HTTPS", nil, ServerUnsupported},
		{"TLS", nil, ServerUnsupported},
		{"UDP", nil, ServerUnsupported},
	} {
		if got := ServerKind(portServer(1, c.protocol, c.tls)); got != c.want {
			t.Errorf("%s %v: %s, want %s", c.protocol, c.tls, got, c.want)
		}
	}
}

func gatewayErrors(errs []ConfigError, code string) []ConfigError {
	var out []ConfigError
	for _, e := range errs {
		if e.Code == code {
			out = append(out, e)
		}
	}
	return out
}

// A server mizzen cannot serve is a warning naming the field: the rest of
// the Gateway applies.
func TestValidateGatewayServers(t *testing.T) {
	files := &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_MUTUAL, ServerCertificate: "/c/tls.crt", PrivateKey: "/c/tls.key"}
	gw := portGateway("shop", "gw", 0, nil,
		portServer(443, "HTTPS", files), // MUTUAL files without caCertificates
		portServer(8443, "HTTPS", &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE,
			ServerCertificate: "/c/tls.crt", PrivateKey: "/c/tls.key", CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256", "RC4-MD5"}}),
		portServer(9443, "TLS", nil),
		portServer(80, "HTTP", nil),
		portServer(80, "TCP", nil),
	)
	errs := ValidateGateway(gw)
	if hasErrors(errs) {
		t.Errorf("errors (the Gateway would be refused whole): %v", errs)
	}
	want := map[string]string{
		"MissingCACert":          "spec.servers[0].tls.caCertificates",
		"UnsupportedCipherSuite": "spec.servers[1].tls.cipherSuites[1]",
		"MissingTLS":             "spec.servers[2].tls",
		"GatewayPortConflict":    "spec.servers[4].port.number",
	}
	for code, field := range want {
		got := gatewayErrors(errs, code)
		if len(got) != 1 || got[0].Field != field {
			t.Errorf("%s: %v, want one on %s", code, got, field)
		}
	}
	if GatewayServerServable(gw.Spec.Servers[0]) || !GatewayServerServable(gw.Spec.Servers[1]) || GatewayServerServable(gw.Spec.Servers[2]) {
		t.Error("servable: want the MUTUAL server without CA and the TLS server without tls skipped, the SIMPLE one served")
	}
	if got := EnvoyCipherSuites(gw.Spec.Servers[1].Tls.CipherSuites); len(got) != 1 || got[0] != "ECDHE-RSA-AES128-GCM-SHA256" {
		t.Errorf("EnvoyCipherSuites = %v", got)
	}
}

// Across the Gateways of one workload: a second TCP server on a port, a TLS
// host repeated on a port; and servers no route serves.
func TestGatewayServerClashesAndRoutes(t *testing.T) {
	ingress := map[string]string{"istio": "ingressgateway"}
	simple := &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE, ServerCertificate: "/c/tls.crt", PrivateKey: "/c/tls.key"}
	tlsServer := func(host string) *networkingapi.Server {
		s := portServer(443, "HTTPS", simple)
		s.Hosts = []string{host}
		return s
	}
	vs := &networking.VirtualService{}
	vs.Namespace, vs.Name = "shop", "tcp"
	vs.Spec.Hosts = []string{"*"}
	vs.Spec.Gateways = []string{"first"}
	vs.Spec.Tcp = []*networkingapi.TCPRoute{{Match: []*networkingapi.L4MatchAttributes{{Port: 31400}},
		Route: []*networkingapi.RouteDestination{{Destination: &networkingapi.Destination{Host: "db"}}}}}
	snap := Build(&Inputs{
		Gateways: []*networking.Gateway{
			portGateway("shop", "first", 0, ingress, portServer(31400, "TCP", nil), tlsServer("a.example.com")),
			portGateway("shop", "second", 1, ingress, portServer(31400, "TCP", nil), tlsServer("a.example.com")),
		},
		VirtualServices: []*networking.VirtualService{vs},
	}, 1)
	clashes := gatewayErrors(snap.Errors, "GatewayServerConflict")
	if len(clashes) != 2 || clashes[0].Name != "second" || clashes[1].Name != "second" ||
		!strings.Contains(clashes[0].Message+clashes[1].Message, "a TCP port carries one") ||
		!strings.Contains(clashes[0].Message+clashes[1].Message, "host a.example.com on port 443") {
		t.Errorf("clashes = %v, want the TCP server and the repeated host of shop/second", clashes)
	}
	unrouted := gatewayErrors(snap.Errors, "GatewayServerWithoutRoutes")
	if len(unrouted) != 1 || unrouted[0].Name != "second" || unrouted[0].Field != "spec.servers[0]" {
		t.Errorf("without routes = %v, want shop/second's TCP server (the VirtualService binds shop/first only)", unrouted)
	}
}
