package analyze

import (
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// walkDestinations calls f for every destination of a VirtualService (routes,
// mirrors) with its field path, as the model checks them.
func walkDestinations(vs *networking.VirtualService, f func(field string, d *networkingapi.Destination)) {
	for i, r := range vs.Spec.GetHttp() {
		for j, d := range r.GetRoute() {
			f(fmt.Sprintf("spec.http[%d].route[%d].destination", i, j), d.GetDestination())
		}
		if m := r.GetMirror(); m != nil {
			f(fmt.Sprintf("spec.http[%d].mirror", i), m)
		}
		for j, m := range r.GetMirrors() {
			f(fmt.Sprintf("spec.http[%d].mirrors[%d].destination", i, j), m.GetDestination())
		}
	}
	for i, r := range vs.Spec.GetTcp() {
		for j, d := range r.GetRoute() {
			f(fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j), d.GetDestination())
		}
	}
	for i, r := range vs.Spec.GetTls() {
		for j, d := range r.GetRoute() {
			f(fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j), d.GetDestination())
		}
	}
}

// appliedVirtualServices are the VirtualServices as written (before delegate
// merging) that the model did not skip.
func (a *analysis) appliedVirtualServices() []*networking.VirtualService {
	skipped := map[string]bool{}
	for _, e := range a.snap.Errors {
		if !e.Warning && e.Kind == "VirtualService" {
			skipped[e.Namespace+"/"+e.Name] = true
		}
	}
	var out []*networking.VirtualService
	for _, vs := range a.snap.Inputs.VirtualServices {
		if !skipped[vs.Namespace+"/"+vs.Name] {
			out = append(out, vs)
		}
	}
	return out
}

// destinationPorts: a destination port the service does not have makes the
// route point at a cluster that does not exist (503). The message lists the
// ports the service has.
func (a *analysis) destinationPorts() {
	for _, vs := range a.appliedVirtualServices() {
		walkDestinations(vs, func(field string, d *networkingapi.Destination) {
			host := model.ResolveHost(d.GetHost(), vs.Namespace)
			svc := a.snap.Service(host)
			p := d.GetPort().GetNumber()
			if svc == nil || p == 0 || svc.PortByNumber(p) != nil {
				return
			}
			owner := "Service " + svc.Namespace + "/" + svc.Name
			if svc.FromServiceEntry != "" {
				owner = "ServiceEntry " + svc.FromServiceEntry
			}
			a.warn("VirtualService", vs.Namespace, vs.Name, field+".port.number", "DestinationPortNotFound",
				fmt.Sprintf("port %d is not a port of %s (its ports: %s); requests on this route will get 503", p, host, joinPorts(svc)),
				fmt.Sprintf("set destination.port.number to one of %s's ports, or add port %d to %s", host, p, owner))
		})
	}
}

// hostsOutsideDiscovery: a destination host that is a Service in a namespace
// discovery selection leaves out is unknown to mizzen; say so instead of
// "not a known service".
func (a *analysis) hostsOutsideDiscovery() {
	if len(a.outside) == 0 {
		return
	}
	for _, vs := range a.appliedVirtualServices() {
		walkDestinations(vs, func(field string, d *networkingapi.Destination) {
			host := model.ResolveHost(d.GetHost(), vs.Namespace)
			svc := a.full.Service(host)
			if a.snap.Service(host) != nil || svc == nil || !a.outside[svc.Namespace] {
				return
			}
			a.add(Finding{ConfigError: model.ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name, Field: field + ".host",
				Code: "ReferencedResourceNotFound", Warning: true,
				Message: fmt.Sprintf("host %s is Service %s/%s, but namespace %s does not match the discovery selectors, so mizzen does not know it: "+
					"requests on this route get 503 (proxies keep no cluster for it)", host, svc.Namespace, svc.Name, svc.Namespace)},
				ID:   ServiceOutsideDiscovery,
				Hint: fmt.Sprintf("label namespace %s to match --discovery-selectors, or route elsewhere", svc.Namespace)})
		})
	}
}

// virtualServicesOutsideDiscovery: a VirtualService in a namespace the
// discovery selectors leave out is ignored, also for hosts mizzen serves.
func (a *analysis) virtualServicesOutsideDiscovery() {
	if len(a.outside) == 0 {
		return
	}
	for _, vs := range a.full.Inputs.VirtualServices {
		if !a.outside[vs.Namespace] {
			continue
		}
		for i, h := range vs.Spec.GetHosts() {
			host := model.ResolveHost(h, vs.Namespace)
			if a.snap.Service(host) == nil {
				continue
			}
			a.add(Finding{ConfigError: model.ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name,
				Field: fmt.Sprintf("spec.hosts[%d]", i), Code: "OutsideDiscoverySelection", Warning: true,
				Message: fmt.Sprintf("namespace %s does not match the discovery selectors, so mizzen ignores this VirtualService: requests to %s are not routed by it",
					vs.Namespace, host)},
				ID:   ServiceOutsideDiscovery,
				Hint: fmt.Sprintf("label namespace %s to match --discovery-selectors, or move the VirtualService to a selected namespace", vs.Namespace)})
		}
	}
}

// formatLabels renders labels as a selector: app=reviews,version=v1.
func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

// gatewaysReferenced: a VirtualService bound to a Gateway that does not exist
// silently does nothing there.
func (a *analysis) gatewaysReferenced() {
	known := map[string]bool{}
	for _, gw := range a.snap.Gateways {
		known[gw.Namespace+"/"+gw.Name] = true
	}
	for _, vs := range a.snap.VirtualServices {
		for i, g := range vs.Spec.GetGateways() {
			if g == "mesh" {
				continue
			}
			full := g
			if !strings.Contains(g, "/") {
				full = vs.Namespace + "/" + g
			}
			if !known[full] {
				a.warn("VirtualService", vs.Namespace, vs.Name, fmt.Sprintf("spec.gateways[%d]", i), "ReferencedResourceNotFound",
					fmt.Sprintf("gateway %s does not exist; this VirtualService has no effect on it", full),
					"create Gateway "+full+", or name an existing one as <namespace>/<name>")
			}
		}
	}
}

// gatewaysSelectWorkloads: a Gateway whose selector matches no known pod
// configures nothing (only meaningful when the config holds pods at all).
func (a *analysis) gatewaysSelectWorkloads() {
	pods := a.snap.Inputs.Pods
	if len(pods) == 0 {
		return
	}
	for _, gw := range a.snap.Gateways {
		sel := gw.Spec.GetSelector()
		found := false
		for _, p := range pods {
			if model.LabelsMatch(sel, p.Labels) {
				found = true
				break
			}
		}
		if !found {
			a.warn("Gateway", gw.Namespace, gw.Name, "spec.selector", "GatewaySelectsNoWorkload",
				fmt.Sprintf("selector %s matches no pod; no gateway proxy will get these servers", formatLabels(sel)), "")
		}
	}
}

// destinationRuleHosts: a DestinationRule for a host no service defines
// applies to nothing (typo, or the ServiceEntry is missing).
func (a *analysis) destinationRuleHosts() {
	for _, dr := range a.snap.DestinationRules {
		host := model.ResolveHost(dr.Spec.GetHost(), dr.Namespace)
		if strings.Contains(host, "*") || a.snap.Service(host) != nil {
			continue
		}
		a.warn("DestinationRule", dr.Namespace, dr.Name, "spec.host", "ReferencedResourceNotFound",
			fmt.Sprintf("host %s is not a known service; this DestinationRule's subsets and policies apply to nothing", host),
			"correct spec.host, or define the host with a Service or ServiceEntry")
	}
}

// subsetsMatchEndpoints: a subset whose labels match none of the host's
// endpoints makes every route to it answer 503.
func (a *analysis) subsetsMatchEndpoints() {
	for _, dr := range a.snap.DestinationRules {
		host := model.ResolveHost(dr.Spec.GetHost(), dr.Namespace)
		if a.snap.Service(host) == nil {
			continue // reported elsewhere, or a wildcard host
		}
		eps := a.snap.Endpoints(host)
		if len(eps) == 0 {
			continue // nothing runs yet; not the subset's fault
		}
		for i, ss := range dr.Spec.GetSubsets() {
			matched := false
			for _, ep := range eps {
				if model.LabelsMatch(ss.GetLabels(), ep.Labels) {
					matched = true
					break
				}
			}
			if !matched {
				a.warn("DestinationRule", dr.Namespace, dr.Name, fmt.Sprintf("spec.subsets[%d].labels", i), "SubsetMatchesNoEndpoint",
					fmt.Sprintf("subset %q (labels %s) matches none of the %d endpoints of %s; its routes will answer 503", ss.GetName(), formatLabels(ss.GetLabels()), len(eps), host), "")
			}
		}
	}
}
