package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// peerIdentityKeys are the attributes that exist only on mTLS connections:
// the caller's certificate is where principals and namespaces come from.
var peerIdentityKeys = map[string]bool{"source.principal": true, "source.namespace": true}

// principalsWithoutMTLS: an AuthorizationPolicy that matches on principals or
// namespaces (from.source, or when source.principal/source.namespace) selects
// workloads whose PeerAuthentication does not require mTLS. Plaintext callers
// have no principal, so an ALLOW rule never matches them ("my principals
// policy did not take effect" — it denies them), and a DENY rule never denies
// them: the policy is bypassed by anyone who skips mTLS. With DISABLE, no
// caller ever has a principal.
func (a *analysis) principalsWithoutMTLS() {
	type workload struct {
		ns     string
		labels map[string]string
		ports  map[uint32]bool
	}
	var workloads []workload
	seen := map[string]bool{}
	for _, svc := range a.snap.Services() {
		for _, ep := range a.snap.Endpoints(svc.Hostname) {
			if ep.PodName == "" || seen[ep.Namespace+"/"+ep.PodName] {
				continue
			}
			seen[ep.Namespace+"/"+ep.PodName] = true
			w := workload{ns: ep.Namespace, labels: ep.Labels, ports: map[uint32]bool{}}
			for _, p := range ep.Ports {
				w.ports[p] = true
			}
			workloads = append(workloads, w)
		}
	}
	// Pods without endpoints, and the pod templates of workload controllers:
	// a manifest is checked before anything runs.
	for _, t := range podTemplates(a.snap.Inputs) {
		if seen[t.namespace+"/"+t.name] {
			continue
		}
		seen[t.namespace+"/"+t.name] = true
		w := workload{ns: t.namespace, labels: t.spec.Labels, ports: map[uint32]bool{}}
		for _, c := range t.spec.Spec.Containers {
			for _, p := range c.Ports {
				w.ports[uint32(p.ContainerPort)] = true
			}
		}
		workloads = append(workloads, w)
	}
	root := a.snap.Mesh.GetRootNamespace()
	for _, p := range a.snap.AuthorizationPolicies() {
		field := principalField(p)
		if field == "" {
			continue
		}
		modes := map[model.MTLSMode][]string{}
		for _, w := range workloads {
			if (p.Namespace != root && w.ns != p.Namespace) || !model.LabelsMatch(p.Selector, w.labels) {
				continue
			}
			m := a.snap.MTLSFor(w.ns, w.labels)
			weak := m.Mode
			for port := range w.ports {
				if pm := m.ForPort(port); pm != model.MTLSStrict {
					weak = pm
				}
			}
			if weak != model.MTLSStrict {
				modes[weak] = append(modes[weak], w.ns+"/"+workloadName(w.labels))
			}
		}
		for _, mode := range []model.MTLSMode{model.MTLSDisable, model.MTLSPermissive} {
			ws := modes[mode]
			if len(ws) == 0 {
				continue
			}
			sort.Strings(ws)
			ws = compactStrings(ws)
			effect := "an ALLOW rule on principals never matches a plaintext caller (it is denied), and a DENY rule never denies one"
			if mode == model.MTLSDisable {
				effect = "no caller ever presents a certificate, so these conditions never match"
			}
			a.warn("AuthorizationPolicy", p.Namespace, p.Name, field, "PrincipalsWithoutMTLS",
				fmt.Sprintf("matches on the caller's identity, but mTLS is %s for %s: %s", mode, strings.Join(ws, ", "), effect),
				"require mTLS for these workloads: a PeerAuthentication with mtls.mode STRICT in their namespace (or the root namespace), so every caller has a certificate")
		}
	}
}

// principalField names the first field of p that needs the peer's identity.
func principalField(p *model.AuthzPolicy) string {
	for _, r := range p.Rules {
		for _, alt := range r.From {
			for _, f := range alt {
				if peerIdentityKeys[f.Key] {
					return f.Field
				}
			}
		}
		for _, f := range r.When {
			if peerIdentityKeys[f.Key] {
				return f.Field
			}
		}
	}
	return ""
}

func workloadName(labels map[string]string) string {
	for _, k := range []string{"app", "app.kubernetes.io/name", "istio"} {
		if v := labels[k]; v != "" {
			return k + "=" + v
		}
	}
	return formatLabels(labels)
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
