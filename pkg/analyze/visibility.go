package analyze

import (
	"fmt"
	"sort"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// clientGroup is the sidecars of one namespace under one Sidecar resource:
// they all see the same VirtualServices.
type clientGroup struct {
	ns      string
	sidecar *networking.Sidecar
	proxy   *model.Proxy
	pods    []string
}

// meshClients groups the pods that run sidecars. When some pod shows an
// injected sidecar (an istio-proxy container or Istio's status annotation),
// only such pods count; config without any (a YAML directory of examples)
// counts every pod. Gateway pods are routers, not callers of mesh routes.
func (a *analysis) meshClients() []*clientGroup {
	pods := a.snap.Inputs.Pods
	injected := func(p *corev1.Pod) bool {
		if _, ok := p.Annotations["sidecar.istio.io/status"]; ok {
			return true
		}
		for _, c := range p.Spec.Containers {
			if c.Name == "istio-proxy" {
				return true
			}
		}
		return false
	}
	anyInjected := false
	for _, p := range pods {
		anyInjected = anyInjected || injected(p)
	}
	groups := map[string]*clientGroup{}
	for _, p := range pods {
		if anyInjected && !injected(p) {
			continue
		}
		gateway := false
		for _, gw := range a.snap.Gateways {
			gateway = gateway || (len(gw.Spec.GetSelector()) > 0 && model.LabelsMatch(gw.Spec.GetSelector(), p.Labels))
		}
		if gateway {
			continue
		}
		proxy := &model.Proxy{Type: model.SidecarProxy, Namespace: p.Namespace, Labels: p.Labels, PodName: p.Name}
		sc := a.snap.SidecarFor(proxy)
		key := p.Namespace
		if sc != nil {
			key += "|" + sc.Namespace + "/" + sc.Name
		}
		g := groups[key]
		if g == nil {
			g = &clientGroup{ns: p.Namespace, sidecar: sc, proxy: proxy}
			groups[key] = g
		}
		g.pods = append(g.pods, p.Name)
	}
	out := make([]*clientGroup, 0, len(groups))
	for _, g := range groups {
		sort.Strings(g.pods)
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].ns+"|"+sidecarName(out[i].sidecar) < out[j].ns+"|"+sidecarName(out[j].sidecar)
	})
	return out
}

func sidecarName(sc *networking.Sidecar) string {
	if sc == nil {
		return ""
	}
	return sc.Namespace + "/" + sc.Name
}

func boundToMesh(vs *networking.VirtualService) bool {
	if len(vs.Spec.GetGateways()) == 0 {
		return true
	}
	for _, g := range vs.Spec.GetGateways() {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// exportAllows applies a VirtualService's exportTo to a viewer namespace.
func exportAllows(list []string, ns, viewer string) bool {
	if len(list) == 0 {
		return true
	}
	for _, e := range list {
		if e == "*" || e == viewer || (e == "." && ns == viewer) {
			return true
		}
	}
	return false
}

// virtualServiceVisibility: a mesh VirtualService that the sidecars of some
// namespace cannot see (its exportTo, their Sidecar's egress hosts) does not
// route their requests: they go to the service's default cluster, or, when
// the host itself is hidden too, out through PassthroughCluster (ALLOW_ANY)
// or nowhere (REGISTRY_ONLY). Reported once per host, naming each namespace
// and what hides the VirtualService from it.
func (a *analysis) virtualServiceVisibility() {
	clients := a.meshClients()
	if len(clients) == 0 {
		return
	}
	type view struct {
		vs   map[*networking.VirtualService]bool
		snap *model.Snapshot
	}
	views := make([]view, len(clients))
	for i, g := range clients {
		v := a.snap.View(a.snap.ScopeFor(g.proxy))
		views[i] = view{vs: map[*networking.VirtualService]bool{}, snap: v}
		for _, vs := range v.VirtualServices {
			views[i].vs[vs] = true
		}
	}
	for _, vs := range a.snap.VirtualServices {
		if !boundToMesh(vs) {
			continue
		}
		for hi, h := range vs.Spec.GetHosts() {
			host := model.ResolveHost(h, vs.Namespace)
			if strings.Contains(host, "*") {
				continue // wildcard hosts: whose traffic they catch is not known here
			}
			var clauses, hints []string
			for i, g := range clients {
				if views[i].vs[vs] {
					continue
				}
				var whys, hs []string
				if !exportAllows(vs.Spec.GetExportTo(), vs.Namespace, g.ns) {
					whys = append(whys, fmt.Sprintf("its exportTo %s leaves out namespace %s", quoted(vs.Spec.GetExportTo()), g.ns))
					hs = append(hs, fmt.Sprintf("add %s to the VirtualService's exportTo", g.ns))
				}
				if g.sidecar != nil && !sidecarAllows(g.sidecar, g.ns, vs.Namespace, vs.Spec.GetHosts()) {
					whys = append(whys, fmt.Sprintf("Sidecar %s/%s's egress hosts %s do not include %s/%s", g.sidecar.Namespace, g.sidecar.Name,
						quoted(egressHosts(g.sidecar)), vs.Namespace, h))
					hs = append(hs, fmt.Sprintf("add %s/%s (or %s/*) to Sidecar %s/%s's egress hosts", vs.Namespace, h, vs.Namespace, g.sidecar.Namespace, g.sidecar.Name))
				}
				if len(whys) == 0 {
					continue // hidden for a reason this check does not know; the model decides
				}
				why, hint := strings.Join(whys, ", and "), strings.Join(hs, " and ")
				var then string
				switch {
				case a.full.Service(host) == nil:
					then = "no service defines " + host + ", so their requests to it leave unrouted through PassthroughCluster (ALLOW_ANY) or are refused (REGISTRY_ONLY)"
				case views[i].snap.Service(host) != nil:
					then = "their requests to " + host + " skip these routes and go to the service's default cluster"
				case views[i].snap.Mesh.GetOutboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY:
					then = "the host is hidden from them too, so their requests to " + host + " are refused (BlackHoleCluster, 502)"
				default:
					then = "the host is hidden from them too, so their requests to " + host + " leave unrouted through PassthroughCluster"
				}
				clauses = append(clauses, fmt.Sprintf("namespace %s (%s): %s; %s", g.ns, podList(g.pods), why, then))
				hints = append(hints, hint)
			}
			if len(clauses) == 0 {
				continue
			}
			a.warn("VirtualService", vs.Namespace, vs.Name, fmt.Sprintf("spec.hosts[%d]", hi), "VirtualServiceNotVisible",
				"not visible to the sidecars of "+strings.Join(clauses, "; and of "),
				strings.Join(dedupe(hints), "; ")+" (if those workloads call "+host+")")
		}
	}
}

// sidecarAllows applies a Sidecar's egress hosts ("ns/dnsName", "." the
// Sidecar's namespace, "~" none, "*" any) to an object of namespace ns with
// the given hosts, as the model scopes proxies (model.View).
func sidecarAllows(sc *networking.Sidecar, viewer, ns string, hosts []string) bool {
	if len(sc.Spec.GetEgress()) == 0 {
		return true
	}
	for _, pattern := range egressHosts(sc) {
		pns, phost, ok := strings.Cut(pattern, "/")
		if !ok || pns == "~" {
			continue
		}
		if pns == "." {
			pns = viewer
		}
		if pns != "*" && pns != ns {
			continue
		}
		for _, h := range hosts {
			if phost == "*" || phost == h || (strings.HasPrefix(phost, "*") && strings.HasSuffix(strings.TrimPrefix(h, "*"), phost[1:])) {
				return true
			}
		}
	}
	return false
}

// quoted renders a list as YAML would: ["./*", "istio-system/*"].
func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func egressHosts(sc *networking.Sidecar) []string {
	var out []string
	for _, eg := range sc.Spec.GetEgress() {
		out = append(out, eg.GetHosts()...)
	}
	return out
}

func podList(pods []string) string {
	if len(pods) <= 2 {
		return "pods " + strings.Join(pods, ", ")
	}
	return fmt.Sprintf("pods %s and %d more", strings.Join(pods[:2], ", "), len(pods)-2)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
