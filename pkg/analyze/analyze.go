// Package analyze finds what is wrong with a mesh's config, for `mizzen analyze`:
// the model's own checks (every object mizzen skipped or applied with a warning)
// plus cross-object checks that only make sense looking at the whole mesh.
package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Analyze returns every problem of the snapshot, errors first, then by object.
func Analyze(snap *model.Snapshot) []model.ConfigError {
	out := append([]model.ConfigError(nil), snap.Errors...)
	out = append(out, gatewaysReferenced(snap)...)
	out = append(out, gatewaysSelectWorkloads(snap)...)
	out = append(out, subsetsMatchEndpoints(snap)...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Warning != out[j].Warning {
			return !out[i].Warning
		}
		return key(out[i]) < key(out[j])
	})
	return out
}

func key(e model.ConfigError) string {
	return e.Kind + "/" + e.Namespace + "/" + e.Name + "/" + e.Field
}

// gatewaysReferenced: a VirtualService bound to a Gateway that does not exist
// silently does nothing.
func gatewaysReferenced(snap *model.Snapshot) []model.ConfigError {
	known := map[string]bool{}
	for _, gw := range snap.Gateways {
		known[gw.Namespace+"/"+gw.Name] = true
	}
	var out []model.ConfigError
	for _, vs := range snap.VirtualServices {
		for i, g := range vs.Spec.GetGateways() {
			if g == "mesh" {
				continue
			}
			full := g
			if !strings.Contains(g, "/") {
				full = vs.Namespace + "/" + g
			}
			if !known[full] {
				out = append(out, model.ConfigError{Kind: "VirtualService", Namespace: vs.Namespace, Name: vs.Name,
					Field: fmt.Sprintf("spec.gateways[%d]", i), Code: "ReferencedResourceNotFound", Warning: true,
					Message: fmt.Sprintf("gateway %s does not exist; this VirtualService has no effect on it", full)})
			}
		}
	}
	return out
}

// gatewaysSelectWorkloads: a Gateway whose selector matches no known pod
// configures nothing (only meaningful when the config holds pods at all).
func gatewaysSelectWorkloads(snap *model.Snapshot) []model.ConfigError {
	pods := snap.Inputs.Pods
	if len(pods) == 0 {
		return nil
	}
	var out []model.ConfigError
	for _, gw := range snap.Gateways {
		sel := gw.Spec.GetSelector()
		found := false
		for _, p := range pods {
			if model.LabelsMatch(sel, p.Labels) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, model.ConfigError{Kind: "Gateway", Namespace: gw.Namespace, Name: gw.Name, Field: "spec.selector",
				Code: "GatewaySelectsNoWorkload", Warning: true,
				Message: fmt.Sprintf("selector %v matches no pod; no gateway proxy will get these servers", sel)})
		}
	}
	return out
}

// subsetsMatchEndpoints: a subset whose labels match none of the host's
// endpoints makes every route to it answer 503.
func subsetsMatchEndpoints(snap *model.Snapshot) []model.ConfigError {
	var out []model.ConfigError
	for _, dr := range snap.DestinationRules {
		host := model.ResolveHost(dr.Spec.GetHost(), dr.Namespace)
		if snap.Service(host) == nil {
			continue // reported elsewhere, or a wildcard host
		}
		eps := snap.Endpoints(host)
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
				out = append(out, model.ConfigError{Kind: "DestinationRule", Namespace: dr.Namespace, Name: dr.Name,
					Field: fmt.Sprintf("spec.subsets[%d].labels", i), Code: "SubsetMatchesNoEndpoint", Warning: true,
					Message: fmt.Sprintf("subset %q (labels %v) matches none of the %d endpoints of %s; its routes will answer 503", ss.GetName(), ss.GetLabels(), len(eps), host)})
			}
		}
	}
	return out
}
