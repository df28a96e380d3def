package analyze

import (
	"fmt"
	"strings"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// PortNameIsNotUnderNamingConvention is istioctl's message for a Service port
// whose protocol Istio has to sniff.
const PortNameIsNotUnderNamingConvention = "IST0118"

// sniffedHTTPRoutes notes VirtualService http rules for sidecars on a host
// whose ports carry HTTP only by protocol sniffing (no http-… name, no
// appProtocol): they apply to connections that open with plaintext HTTP/1.x
// or h2c, and to nothing else (the app's own TLS, other protocols), and a
// client that sends nothing first waits for the detection timeout.
func (a *analysis) sniffedHTTPRoutes() {
	for _, vs := range a.appliedVirtualServices() {
		if len(vs.Spec.GetHttp()) == 0 || !appliesToMesh(vs.Spec.GetGateways()) {
			continue
		}
		for _, h := range vs.Spec.GetHosts() {
			svc := a.snap.Service(model.ResolveHost(h, vs.Namespace))
			if svc == nil {
				continue
			}
			var sniffed []string
			for _, p := range svc.Ports {
				if p.Protocol.IsSniffed() {
					name := p.Name
					if name == "" {
						name = "(unnamed)"
					}
					sniffed = append(sniffed, fmt.Sprintf("%d/%s", p.Port, name))
				}
			}
			if len(sniffed) == 0 {
				continue
			}
			owner := "Service " + svc.Namespace + "/" + svc.Name
			if svc.FromServiceEntry != "" {
				owner = "ServiceEntry " + svc.FromServiceEntry
			}
			a.add(Finding{ConfigError: model.ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name, Field: "spec.http",
				Code: "SniffedHTTPRoutes", Warning: true,
				Message: fmt.Sprintf("host %s: port %s of %s declares no protocol (neither an http-/grpc-… name nor appProtocol), so its HTTP is found by "+
					"protocol sniffing: these http rules apply only to connections that open with plaintext HTTP/1.x or h2c; anything else on the port "+
					"(TLS from the app, other protocols) passes as TCP, and a client that sends nothing first waits for protocolDetectionTimeout",
					svc.Hostname, strings.Join(sniffed, ", "), owner)},
				ID:   PortNameIsNotUnderNamingConvention,
				Hint: fmt.Sprintf("declare the protocol on %s: name the port http-<suffix> (or grpc-…, tcp-…) or set appProtocol: http", owner)})
		}
	}
}

// appliesToMesh: a VirtualService without gateways, or naming "mesh", routes
// sidecars' traffic.
func appliesToMesh(gateways []string) bool {
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if g == "mesh" {
			return true
		}
	}
	return false
}
