package translate

import (
	"net"
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
	return SidecarOutboundRoutesShared(snap, proxy, nil)
}

// SidecarOutboundRoutesShared is SidecarOutboundRoutes reusing the virtual
// hosts memo holds from earlier calls on the same snap (nil: a memo of its
// own). The tables of one view differ only where a proxy's namespace or
// labels change a virtual host, so the others are built once and shared
// (pointers: callers must not modify them).
func SidecarOutboundRoutesShared(snap *model.Snapshot, proxy *model.Proxy, memo *VirtualHostMemo) []*routev3.RouteConfiguration {
	if memo == nil {
		memo = NewVirtualHostMemo()
	}
	var out []*routev3.RouteConfiguration
	for _, port := range outboundRoutePorts(snap) {
		out = append(out, sidecarRouteConfig(snap, proxy, port, memo))
	}
	return out
}

// VirtualHostMemo holds the virtual hosts built for the sidecar route tables
// of one snapshot (view), keyed by what each depends on: the service, the
// port, the caller's namespace only where the service has a short name
// there, and the caller's labels and namespace only through the
// sourceLabels/sourceNamespace matches of its VirtualService. Not safe for
// concurrent use.
type VirtualHostMemo struct {
	hosts     map[vhostKey]*routev3.VirtualHost
	meshVS    map[string]*networking.VirtualService // host → its mesh VirtualService (nil: none)
	portHosts map[uint32]int
}

type vhostKey struct {
	host      string
	port      uint32
	domainsNS string // the caller's namespace where it adds short names, else ""
	variant   string // which caller-dependent matches of the VirtualService apply
}

// NewVirtualHostMemo is an empty memo for one snapshot.
func NewVirtualHostMemo() *VirtualHostMemo {
	return &VirtualHostMemo{hosts: map[vhostKey]*routev3.VirtualHost{}, meshVS: map[string]*networking.VirtualService{}, portHosts: map[uint32]int{}}
}

// hostsOnPort counts the services with a virtual host on port.
func (m *VirtualHostMemo) hostsOnPort(snap *model.Snapshot, port uint32) int {
	n, ok := m.portHosts[port]
	if !ok {
		for _, svc := range snap.Services() {
			if p := svc.PortByNumber(port); p != nil && (p.Protocol.IsHTTP() || sniffedWithListener(svc, p)) {
				n++
			}
		}
		m.portHosts[port] = n
	}
	return n
}

func (m *VirtualHostMemo) virtualService(snap *model.Snapshot, host string, gateways map[string]bool) *networking.VirtualService {
	vs, ok := m.meshVS[host]
	if !ok {
		vs = virtualServiceForHost(snap.VirtualServices, host, gateways)
		m.meshVS[host] = vs
	}
	return vs
}

func sidecarRouteConfig(snap *model.Snapshot, proxy *model.Proxy, port uint32, memo *VirtualHostMemo) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: SidecarOutboundRouteName(port), ValidateClusters: boolv(false), MaxDirectResponseBodySizeBytes: u32(maxDirectResponseBodyBytes),
		IgnorePortInHostMatching: true}
	scope := routeScope{port: port, gateways: map[string]bool{"mesh": true}, sourceNS: proxy.Namespace, sourceLabel: proxy.Labels}
	// Sized for the domains of the port's hosts (6 each without aliases):
	// growing it was a quarter of a table's cost.
	used := make(map[string]bool, 6*memo.hostsOnPort(snap, port))
	for _, svc := range snap.Services() {
		p := svc.PortByNumber(port)
		if p == nil || !p.Protocol.IsHTTP() && !sniffedWithListener(svc, p) {
			continue
		}
		vs := memo.virtualService(snap, svc.Hostname, scope.gateways)
		key := vhostKey{host: svc.Hostname, port: port, domainsNS: shortNameNamespace(svc, proxy.Namespace), variant: callerVariant(vs, scope)}
		vh := memo.hosts[key]
		if vh == nil {
			vh = &routev3.VirtualHost{Name: model.HostPort(svc.Hostname, port), Domains: uniqueDomains(serviceDomains(svc, proxy.Namespace))}
			if vs != nil {
				vh.Routes = virtualServiceRoutes(snap, vs, scope)
			} else {
				vh.Routes = []*routev3.Route{defaultRoute(snap, proxy.Namespace, OutboundClusterName(port, "", svc.Hostname))}
			}
			memo.hosts[key] = vh
		}
		if vh = withUnusedDomains(vh, used); len(vh.Domains) > 0 {
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	rc.VirtualHosts = append(rc.VirtualHosts, fallbackVirtualHost(snap))
	return rc
}

// withUnusedDomains marks vh's domains used and returns vh, or a copy
// without the domains an earlier virtual host of the table took (Envoy
// refuses a domain twice in one table) — the shared one stays as it is.
func withUnusedDomains(vh *routev3.VirtualHost, used map[string]bool) *routev3.VirtualHost {
	taken := 0
	for _, d := range vh.Domains {
		if used[d] {
			taken++
		}
	}
	if taken == 0 {
		for _, d := range vh.Domains {
			used[d] = true
		}
		return vh
	}
	kept := make([]string, 0, len(vh.Domains)-taken)
	for _, d := range vh.Domains {
		if !used[d] {
			used[d] = true
			kept = append(kept, d)
		}
	}
	return &routev3.VirtualHost{Name: vh.Name, Domains: kept, Routes: vh.Routes}
}

// uniqueDomains drops repeats (an alias may give a name twice), keeping
// the first of each.
func uniqueDomains(ds []string) []string {
	seen := make(map[string]bool, len(ds))
	out := ds[:0]
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// shortNameNamespace is callerNS when serviceDomains gives svc a short name
// there (the service, or an alias of it, lives in callerNS), else "".
func shortNameNamespace(svc *model.Service, callerNS string) string {
	if kubeNamespace(svc.Hostname) == callerNS {
		return callerNS
	}
	for _, a := range svc.Aliases {
		if kubeNamespace(a) == callerNS {
			return callerNS
		}
	}
	return ""
}

// callerVariant says which of vs's matches that depend on the caller
// (sourceLabels, sourceNamespace) apply to scope: virtual hosts of callers
// with equal variants are equal.
func callerVariant(vs *networking.VirtualService, scope routeScope) string {
	if vs == nil {
		return ""
	}
	var b []byte
	for _, hr := range vs.Spec.GetHttp() {
		for _, m := range hr.GetMatch() {
			if len(m.GetSourceLabels()) == 0 && m.GetSourceNamespace() == "" {
				continue
			}
			on := (len(m.GetSourceLabels()) == 0 || scope.sourceLabel != nil && model.LabelsMatch(m.GetSourceLabels(), scope.sourceLabel)) &&
				(m.GetSourceNamespace() == "" || m.GetSourceNamespace() == scope.sourceNS)
			if on {
				b = append(b, '1')
			} else {
				b = append(b, '0')
			}
		}
	}
	return string(b)
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

// serviceDomains lists the names a client may use for a service, as istiod
// does for sidecars: the FQDN (also absolute, with the trailing dot),
// name.ns, name.ns.svc, the short name for callers in the same namespace, and
// the cluster IP. No name:port forms: the table ignores the port in Host
// (ignore_port_in_host_matching, as istiod sets it), which halves the
// domains of every virtual host.
func serviceDomains(svc *model.Service, callerNS string) []string {
	hosts := append([]string{svc.Hostname}, svc.Aliases...)
	var out []string
	for _, h := range hosts {
		// ExternalName Services naming this one are its aliases (istiod's
		// alias resolution): their names reach it too.
		names := kubeNames(h, callerNS)
		out = append(out, names[0])
		if net.ParseIP(h) == nil {
			out = append(out, h+".")
		}
		out = append(out, names[1:]...)
	}
	if svc.ClusterIP != "" {
		out = append(out, hostDomain(svc.ClusterIP))
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

// hostDomain is an address as Envoy sees it in Host once the port is gone:
// IPv6 in brackets.
func hostDomain(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
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
	ns := kubeNamespace(fqdn)
	if ns == "" {
		return []string{fqdn}
	}
	name := strings.TrimSuffix(fqdn, "."+ns+".svc."+model.DefaultDomainSuffix)
	out := []string{fqdn, name + "." + ns, name + "." + ns + ".svc"}
	if callerNS == ns {
		out = append(out, name)
	}
	return out
}

// kubeNamespace is the namespace of a Kubernetes service FQDN
// (<name>.<ns>.svc.<suffix>), "" for other hosts.
func kubeNamespace(fqdn string) string {
	rest, ok := strings.CutSuffix(fqdn, ".svc."+model.DefaultDomainSuffix)
	_, ns, dot := strings.Cut(rest, ".")
	if !ok || !dot || strings.Contains(ns, ".") {
		return ""
	}
	return ns
}
