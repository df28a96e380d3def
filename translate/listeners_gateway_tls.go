package translate

import (
	"fmt"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// CredentialSecretName is Istio's SDS name for a Gateway server's
// tls.credentialName: `kubernetes://<name>`; a MUTUAL server's CA is
// `kubernetes://<name>-cacert`. xds serves them from the Secrets.
func CredentialSecretName(name string) string { return "kubernetes://" + name }

// CredentialCASecretName is the SDS name of a credential's CA bundle.
func CredentialCASecretName(name string) string {
	return CredentialSecretName(name + model.CACertSecretSuffix)
}

// GatewayHTTPSRouteName is Istio's route name for one HTTPS server:
// `https.<port>.<portName>.<gateway>.<ns>`.
func GatewayHTTPSRouteName(port uint32, portName, gateway, ns string) string {
	return fmt.Sprintf("https.%d.%s.%s.%s", port, portName, gateway, ns)
}

// gatewayTLSChain is one HTTPS server the gateway terminates: one filter
// chain of the port's listener and one route table.
type gatewayTLSChain struct {
	port        uint32
	server      gatewayServer
	routeName   string
	serverNames []string
}

// gatewayTLSChains lists the HTTPS servers of the proxy's Gateways it can
// serve, by port, in Gateway precedence order. Skipped (each reported by the
// model as a ConfigError on the Gateway, or by design):
//   - every server, for a proxy whose stream proved no identity: xds serves
//     credentials only to those (istiod's rule), and Envoy would keep the
//     listener warming for a secret that never comes;
//   - a server whose credential is missing or broken in the proxy's namespace,
//     for the same reason;
//   - an HTTPS server on a port that also has plain-HTTP servers: both would be
//     listener `0.0.0.0_<port>`;
//   - a server whose SNI match equals an earlier one's on the same port: Envoy
//     rejects a listener with two identical filter chain matches.
func gatewayTLSChains(snap *model.Snapshot, proxy *model.Proxy) []gatewayTLSChain {
	if proxy.Identity == "" {
		return nil
	}
	plain := gatewayHTTPServers(snap, proxy)
	seenMatch := map[string]bool{}
	seenRoute := map[string]int{}
	var out []gatewayTLSChain
	for _, gw := range GatewaysForProxy(snap, proxy) {
		for _, s := range gw.Spec.GetServers() {
			port := s.GetPort().GetNumber()
			if !model.IsTLSTerminating(s) || !snap.ServerCredentialUsable(proxy.Namespace, s) || len(plain[port]) > 0 {
				continue
			}
			names := model.SNINames(s.GetHosts())
			mk := fmt.Sprintf("%d|%s", port, strings.Join(names, ","))
			if seenMatch[mk] {
				continue
			}
			seenMatch[mk] = true
			rn := GatewayHTTPSRouteName(port, s.GetPort().GetName(), gw.Name, gw.Namespace)
			// Two servers of one Gateway with the same port name would share
			// Istio's route name; later ones get a suffix so each keeps its hosts.
			if n := seenRoute[rn]; n > 0 {
				seenRoute[rn]++
				rn = fmt.Sprintf("%s.%d", rn, n)
			} else {
				seenRoute[rn] = 1
			}
			out = append(out, gatewayTLSChain{port: port, server: gatewayServer{gw, s}, routeName: rn, serverNames: names})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// gatewayTLSListeners builds one bound listener `0.0.0.0_<port>` per HTTPS
// port: tls_inspector reads the SNI, one filter chain per server terminates
// TLS with the server's credential (SDS `kubernetes://<credentialName>`) and
// routes through the server's own route table.
func gatewayTLSListeners(snap *model.Snapshot, proxy *model.Proxy, bindIP string, authn, authz []*hcmv3.HttpFilter) []*listenerv3.Listener {
	var out []*listenerv3.Listener
	byPort := map[uint32]*listenerv3.Listener{}
	for _, c := range gatewayTLSChains(snap, proxy) {
		if privileged(proxy, GatewayBindPort(snap, proxy, c.port)) {
			continue
		}
		l := byPort[c.port]
		if l == nil {
			bind := GatewayBindPort(snap, proxy, c.port)
			name := OutboundHTTPListenerName(bind)
			l = &listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(bindIP, bind),
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
				ListenerFilters:  []*listenerv3.ListenerFilter{tlsInspectorFilter()},
			}
			byPort[c.port] = l
			out = append(out, l)
		}
		var match *listenerv3.FilterChainMatch
		if len(c.serverNames) > 0 {
			match = &listenerv3.FilterChainMatch{ServerNames: c.serverNames}
		}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			Name:             c.routeName,
			FilterChainMatch: match,
			TransportSocket:  gatewayServerTLS(c.server.server.GetTls()),
			Filters: []*listenerv3.Filter{
				httpConnectionManagerFilter(hcmOptions{statPrefix: "outbound_" + l.Name, rds: c.routeName, gateway: true, routeFilters: true, authFilters: authn, authz: authz}),
			},
		})
	}
	return out
}

// gatewayServerTLS terminates TLS with the server's credential; MUTUAL also
// requires a client certificate signed by the credential's CA.
func gatewayServerTLS(t *networkingapi.ServerTLSSettings) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(CredentialSecretName(t.GetCredentialName()))},
		AlpnProtocols:                  []string{"h2", "http/1.1"},
	}}
	if t.GetMode() == networkingapi.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = boolv(true)
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsSecret(CredentialCASecretName(t.GetCredentialName())),
		}
	}
	return tlsSocket(ctx)
}
