package translate

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// SidecarOutboundRoutes builds one route table per outbound HTTP or sniffed
// port, named by the port, with a virtual host per service on that port (a
// sniffed port's HTTP branch routes through it too, as in istiod). It depends on the
// proxy's namespace (short-name domains) and labels (sourceLabels matches) only.
func SidecarOutboundRoutes(snap *model.Snapshot, proxy *model.Proxy) []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	for _, port := range outboundRoutePorts(snap) {
		out = append(out, sidecarRouteConfig(snap, proxy, port))
	}
	return out
}

func sidecarRouteConfig(snap *model.Snapshot, proxy *model.Proxy, port uint32) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: SidecarOutboundRouteName(port), ValidateClusters: boolv(false), MaxDirectResponseBodySizeBytes: u32(maxDirectResponseBodyBytes)}
	scope := routeScope{port: port, gateways: map[string]bool{"mesh": true}, sourceNS: proxy.Namespace, sourceLabel: proxy.Labels}
	used := map[string]bool{}
	for _, svc := range snap.Services() {
		p := svc.PortByNumber(port)
		if p == nil || !p.Protocol.IsHTTP() && !sniffedWithListener(svc, p) {
			continue
		}
		vh := &routev3.VirtualHost{Name: model.HostPort(svc.Hostname, port)}
		for _, d := range serviceDomains(svc, port, proxy.Namespace) {
			if !used[d] {
				used[d] = true
				vh.Domains = append(vh.Domains, d)
			}
		}
		if vs := virtualServiceForHost(snap.VirtualServices, svc.Hostname, scope.gateways); vs != nil {
			vh.Routes = virtualServiceRoutes(snap, vs, scope)
		} else {
			vh.Routes = []*routev3.Route{defaultRoute(snap, proxy.Namespace, OutboundClusterName(port, "", svc.Hostname))}
		}
		if len(vh.Domains) > 0 {
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	rc.VirtualHosts = append(rc.VirtualHosts, fallbackVirtualHost(snap))
	return rc
}

// fallbackVirtualHost catches hosts the mesh does not know: passed through under
// ALLOW_ANY, refused with 502 under REGISTRY_ONLY, as in Istio.
func fallbackVirtualHost(snap *model.Snapshot) *routev3.VirtualHost {
	if snap.Mesh.GetOutboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		return &routev3.VirtualHost{Name: "block_all", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Name:   "block_all",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
		}}}
	}
	return &routev3.VirtualHost{Name: "allow_any", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Name:  "allow_any",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: PassthroughCluster},
			Timeout:          dur(0),
		}},
	}}}
}

// serviceDomains lists the names a client may use for a service, as Istio does:
// the FQDN, name.ns, name.ns.svc, the short name for callers in the same
// namespace, and the cluster IP, each with and without the port.
func serviceDomains(svc *model.Service, port uint32, callerNS string) []string {
	names := kubeNames(svc.Hostname, callerNS)
	// ExternalName Services naming this one are its aliases (istiod's
	// alias resolution): their names reach it too.
	for _, a := range svc.Aliases {
		names = append(names, kubeNames(a, callerNS)...)
	}
	if svc.ClusterIP != "" {
		names = append(names, svc.ClusterIP)
	}
	out := make([]string, 0, 2*len(names))
	for _, n := range names {
		out = append(out, n, model.HostPort(n, port))
	}
	if svc.Headless {
		// A StatefulSet's pods are <pod>.<service>...: as in istiod, each of
		// the service's names also matches with any label in front, and the
		// original-destination cluster reaches the pod the client dialed.
		for _, d := range out[:len(out):len(out)] {
			out = append(out, "*."+d)
		}
	}
	return out
}

// virtualServiceForHost picks the VirtualService for a service host among those
// selected by the gateways: an exact host wins over a wildcard, the oldest wins
// among equals (VirtualServices arrive oldest first).
func virtualServiceForHost(all []*networking.VirtualService, host string, gateways map[string]bool) *networking.VirtualService {
	var wildcard *networking.VirtualService
	for _, vs := range all {
		if !gatewaysSelect(vs.Spec.GetGateways(), vs.Namespace, gateways) {
			continue
		}
		for _, h := range vs.Spec.GetHosts() {
			rh := model.ResolveHost(h, vs.Namespace)
			if rh == host {
				return vs
			}
			if wildcard == nil && hostMatches(rh, host) {
				wildcard = vs
			}
		}
	}
	return wildcard
}

// hostMatches reports whether pattern (possibly "*" or "*.suffix") covers host.
func hostMatches(pattern, host string) bool {
	if pattern == host || pattern == "*" {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

// outboundHTTPPorts lists the distinct HTTP service ports, ascending.
func outboundHTTPPorts(snap *model.Snapshot) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, svc := range snap.Services() {
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() && !seen[p.Port] {
				seen[p.Port] = true
				out = append(out, p.Port)
			}
		}
	}
	sortU32(out)
	return out
}

// outboundRoutePorts lists the ports that need a route table `<port>`: HTTP
// ports and ports sniffed on a listener of their own, ascending.
func outboundRoutePorts(snap *model.Snapshot) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, svc := range snap.Services() {
		for _, p := range svc.Ports {
			if (p.Protocol.IsHTTP() || sniffedWithListener(svc, p)) && !seen[p.Port] {
				seen[p.Port] = true
				out = append(out, p.Port)
			}
		}
	}
	sortU32(out)
	return out
}

// sniffedWithListener: a sniffed port gets sniffing listeners (and so HTTP
// routes) when the service has a VIP to match on, or is headless (one
// listener per pod); otherwise its traffic stays plain TCP (virtualOutbound's
// passthrough).
func sniffedWithListener(svc *model.Service, p *model.Port) bool {
	return p.Protocol.IsSniffed() && (svc.ClusterIP != "" || svc.Headless)
}

// kubeNames is a host and, for a Kubernetes service FQDN, the shorter names
// a client may use: name.ns, name.ns.svc, and the bare name from its own
// namespace.
func kubeNames(fqdn, callerNS string) []string {
	rest, ok := strings.CutSuffix(fqdn, ".svc."+model.DefaultDomainSuffix)
	name, ns, dot := strings.Cut(rest, ".")
	if !ok || !dot || strings.Contains(ns, ".") {
		return []string{fqdn}
	}
	out := []string{fqdn, name + "." + ns, name + "." + ns + ".svc"}
	if callerNS == ns {
		out = append(out, name)
	}
	return out
}
