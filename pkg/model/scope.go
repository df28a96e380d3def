package model

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// Scope is what one proxy may see of the mesh: what is exported to its
// namespace, narrowed by the Sidecar resource that applies to it. Proxies with
// equal Keys see exactly the same, so config built for one is shared by all.
type Scope struct {
	Key       string
	Namespace string
	// Sidecar is the Sidecar resource that applies, or nil (everything visible).
	Sidecar *networking.Sidecar
	// ClientMTLS: the proxy has a proven Identity, so it will be sent the
	// `default` and `ROOTCA` secrets and its outbound clusters may originate
	// Istio mTLS (auto mTLS). Proxies without one get plaintext clusters: a
	// cluster waiting for a secret that never comes would never warm. Part of
	// Key ("|mtls").
	ClientMTLS bool
	// AgentSDS: with ClientMTLS, the proxy's `default` and `ROOTCA` come from
	// istio-agent (the bootstrap's sds-grpc cluster), not over ADS, so its
	// clusters name another SDS source. Part of Key ("|agent").
	AgentSDS bool
	// Locality is the proxy's own, when some cluster balances by locality
	// (Snapshot.LocalityLB): endpoints' priorities and weights depend on it,
	// so the endpoints' scope (WithoutClientMTLS) keys on it; clusters and
	// listeners do not.
	Locality Locality
	// Router: a gateway, in a mesh with sniffed ports. Its clusters of those
	// ports speak HTTP/1.1 upstream where a sidecar's follow the caller's
	// protocol (istiod: an h2 client of a gateway must not reach an
	// HTTP/1-only app in h2). Part of Key ("|router"); endpoints ignore it.
	Router bool
}

// Suffixes of Scope.Key for what only changes how mTLS is originated.
const (
	scopeKeyMTLS   = "|mtls"
	scopeKeyAgent  = "|agent"
	scopeKeyRouter = "|router"
)

// WithoutClientMTLS is the scope for what does not depend on whether the
// proxy originates mTLS (endpoints), so proxies with and without an identity
// share it.
//
// Endpoints do depend on the proxy's locality when clusters balance by it, so
// there the key names it: one copy per locality, not per proxy.
func (sc Scope) WithoutClientMTLS() Scope {
	sc.ClientMTLS, sc.AgentSDS, sc.Router = false, false, false
	sc.Key = sc.visibilityKey()
	if !sc.Locality.IsZero() {
		sc.Key += scopeKeyLocality + sc.Locality.String()
	}
	return sc
}

// scopeKeyLocality starts the endpoints' locality suffix of a Key.
const scopeKeyLocality = "|loc="

// visibilityKey is Key without the mTLS and locality suffixes: what decides
// what the scope sees.
func (sc Scope) visibilityKey() string {
	k, _, _ := strings.Cut(sc.Key, scopeKeyLocality)
	return strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(k, scopeKeyAgent), scopeKeyMTLS), scopeKeyRouter)
}

// ScopeFor picks the proxy's scope the way Istio picks its Sidecar: a Sidecar in
// the proxy's namespace whose workloadSelector matches its labels, else the one
// without selector in its namespace, else the one without selector in the root
// namespace. Gateways get no Sidecar.
func (s *Snapshot) ScopeFor(p *Proxy) Scope {
	sc := Scope{Namespace: p.Namespace}
	if p.Type == SidecarProxy {
		sc.Sidecar = s.sidecarFor(p)
	}
	if s.exportRestricted {
		sc.Key = "ns=" + p.Namespace
	} else if k := s.cachedDRViewKey(p.Namespace); k != "" {
		// This namespace resolves some host to another DestinationRule than
		// the shared view does: namespaces with the same rules share a key.
		sc.Key = "dr=" + k
	}
	if sc.Sidecar != nil {
		sc.Key += "|sidecar=" + sc.Sidecar.Namespace + "/" + sc.Sidecar.Name
		if sc.Sidecar.Namespace == s.Mesh.GetRootNamespace() && !s.exportRestricted && sidecarUsesDot(sc.Sidecar) {
			// A mesh-wide default with "./..." hosts means "the proxy's own namespace".
			sc.Key += "|ns=" + p.Namespace
		}
	}
	if s.localityLB {
		sc.Locality = s.ProxyLocality(p)
	}
	if p.Type == RouterProxy && s.sniffedPorts {
		sc.Router = true
		sc.Key += scopeKeyRouter
	}
	if p.Identity != "" {
		sc.ClientMTLS = true
		sc.Key += scopeKeyMTLS
		if p.AgentSDS() {
			sc.AgentSDS = true
			sc.Key += scopeKeyAgent
		}
	}
	return sc
}

// SidecarFor returns the Sidecar resource that applies to a sidecar proxy, or nil.
func (s *Snapshot) SidecarFor(p *Proxy) *networking.Sidecar {
	if p.Type != SidecarProxy {
		return nil
	}
	return s.sidecarFor(p)
}

func (s *Snapshot) sidecarFor(p *Proxy) *networking.Sidecar {
	var nsDefault, rootDefault *networking.Sidecar
	for _, sc := range s.sidecars {
		sel := sc.Spec.GetWorkloadSelector().GetLabels()
		switch {
		case sc.Namespace == p.Namespace && len(sel) > 0 && LabelsMatch(sel, p.Labels):
			return sc
		case sc.Namespace == p.Namespace && len(sel) == 0 && nsDefault == nil:
			nsDefault = sc
		case sc.Namespace == s.Mesh.GetRootNamespace() && len(sel) == 0 && rootDefault == nil:
			rootDefault = sc
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	return rootDefault
}

func sidecarUsesDot(sc *networking.Sidecar) bool {
	for _, eg := range sc.Spec.GetEgress() {
		for _, h := range eg.GetHosts() {
			if strings.HasPrefix(h, "./") {
				return true
			}
		}
	}
	return false
}

// View returns the snapshot as seen from a scope: only the services,
// VirtualServices and DestinationRules the scope may see. Endpoints and
// everything else are shared with s. The full snapshot is its own view when
// nothing restricts visibility.
func (s *Snapshot) View(sc Scope) *Snapshot {
	if sc.Key == "" {
		return s // nothing restricts what this proxy sees
	}
	v := *s
	v.Errors = nil
	v.clientMTLS = sc.ClientMTLS
	v.agentSDS = sc.AgentSDS
	v.viewerLocality = sc.Locality
	v.router = sc.Router
	if sc.visibilityKey() == "" {
		// Sees everything, only originates mTLS: the shared view plus the flag.
		return &v
	}
	v.services = map[string]*Service{}
	v.serviceList = nil
	for _, svc := range s.serviceList {
		if svc.VisibleTo(sc.Namespace) && sidecarAllows(sc, svc.Namespace, []string{svc.Hostname}) {
			v.services[svc.Hostname] = svc
			v.serviceList = append(v.serviceList, svc)
		}
	}
	v.VirtualServices = nil
	for _, vs := range s.VirtualServices {
		if exportedTo(vs.Spec.GetExportTo(), vs.Namespace, sc.Namespace) && sidecarAllows(sc, vs.Namespace, vs.Spec.GetHosts()) {
			v.VirtualServices = append(v.VirtualServices, vs)
		}
	}
	// DestinationRules stay whole: which one applies is resolved for the
	// viewer's namespace (exportTo, namespace order) by DestinationRule.
	v.viewerNS = sc.Namespace
	if sc.Sidecar != nil && sc.Sidecar.Spec.GetOutboundTrafficPolicy() != nil {
		mode := sc.Sidecar.Spec.GetOutboundTrafficPolicy().GetMode()
		mc := proto.Clone(s.Mesh).(*meshv1alpha1.MeshConfig)
		mc.OutboundTrafficPolicy = &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY}
		if mode == networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY {
			mc.OutboundTrafficPolicy.Mode = meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
		}
		v.Mesh = mc
	}
	return &v
}

// ClientMTLS reports whether the view is for proxies with an identity, whose
// outbound clusters originate Istio mTLS (Scope.ClientMTLS).
func (s *Snapshot) ClientMTLS() bool { return s.clientMTLS }

// AgentSDS reports whether the view's proxies get their certificates from
// istio-agent's SDS (Scope.AgentSDS).
func (s *Snapshot) AgentSDS() bool { return s.agentSDS }

// sidecarAllows applies the Sidecar's egress hosts ("ns/dnsName") to an object
// of namespace ns with the given hosts. No Sidecar, or one without egress,
// allows everything.
func sidecarAllows(sc Scope, ns string, hosts []string) bool {
	if sc.Sidecar == nil || len(sc.Sidecar.Spec.GetEgress()) == 0 {
		return true
	}
	for _, eg := range sc.Sidecar.Spec.GetEgress() {
		for _, pattern := range eg.GetHosts() {
			pns, phost, ok := strings.Cut(pattern, "/")
			if !ok {
				continue // rejected by validation
			}
			switch pns {
			case ".":
				// The Sidecar's namespace; for the mesh-wide default in the root
				// namespace Istio reads it as the proxy's namespace, which is the
				// same thing for a Sidecar in the proxy's own namespace.
				pns = sc.Namespace
			case "~":
				continue
			}
			if pns != "*" && pns != ns {
				continue
			}
			for _, h := range hosts {
				if hostPatternMatches(phost, h) {
					return true
				}
			}
		}
	}
	return false
}

// hostPatternMatches: "*" matches all, "*.suffix" any host ending in .suffix
// (and a wildcard host that is a subdomain of it), else equality.
func hostPatternMatches(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		return strings.HasSuffix(strings.TrimPrefix(host, "*"), pattern[1:])
	}
	return false
}

// exportedTo applies an object's exportTo list (objects of namespace ns) to a
// viewer namespace.
func exportedTo(list []string, ns, viewer string) bool {
	m := exportTo(list, ns)
	return m == nil || m[viewer]
}

// ValidateSidecar returns the problems of one Sidecar resource on its own.
func ValidateSidecar(sc *networking.Sidecar) []ConfigError {
	v := validator{kind: "Sidecar", ns: sc.Namespace, name: sc.Name}
	for i, eg := range sc.Spec.GetEgress() {
		if len(eg.GetHosts()) == 0 {
			v.fail(fmt.Sprintf("spec.egress[%d].hosts", i), "MissingHosts", "an egress listener needs hosts")
		}
		for j, h := range eg.GetHosts() {
			ns, host, ok := strings.Cut(h, "/")
			if !ok || ns == "" || host == "" {
				v.fail(fmt.Sprintf("spec.egress[%d].hosts[%d]", i, j), "InvalidHost",
					fmt.Sprintf("%q must be <namespace>/<dnsName> (namespace may be *, . or ~)", h))
			}
		}
	}
	for i, in := range sc.Spec.GetIngress() {
		if in.GetPort() == nil || in.GetPort().GetNumber() == 0 {
			v.fail(fmt.Sprintf("spec.ingress[%d].port", i), "InvalidPort", "an ingress listener needs a port")
		}
	}
	return v.errs
}

// buildSidecars keeps the valid Sidecar resources, oldest first, and warns
// about several selector-less Sidecars in one namespace (Istio uses the oldest).
func (s *Snapshot) buildSidecars(in *Inputs) {
	defaults := map[string]string{}
	for _, sc := range byCreation(in.Sidecars) {
		errs := ValidateSidecar(sc)
		s.Errors = append(s.Errors, errs...)
		if hasErrors(errs) {
			continue
		}
		if len(sc.Spec.GetWorkloadSelector().GetLabels()) == 0 {
			if prev, ok := defaults[sc.Namespace]; ok {
				s.addError(ConfigError{Kind: "Sidecar", Namespace: sc.Namespace, Name: sc.Name, Field: "spec.workloadSelector",
					Code: "ConflictingSidecar", Warning: true,
					Message: fmt.Sprintf("namespace %s already has Sidecar %s without selector (older wins); this one is ignored", sc.Namespace, prev)})
				continue
			}
			defaults[sc.Namespace] = sc.Name
		}
		s.sidecars = append(s.sidecars, sc)
	}
}

// noteExportRestrictions records whether any object limits its visibility; if
// none does, every proxy namespace sees the same and namespace is no part of a
// scope key.
func (s *Snapshot) noteExportRestrictions() {
	restricted := func(list []string) bool {
		for _, e := range list {
			if e != "*" {
				return true
			}
		}
		return false
	}
	for _, svc := range s.serviceList {
		if svc.ExportTo != nil {
			s.exportRestricted = true
			return
		}
	}
	for _, vs := range s.VirtualServices {
		if restricted(vs.Spec.GetExportTo()) {
			s.exportRestricted = true
			return
		}
	}
	for _, dr := range s.DestinationRules {
		if restricted(dr.Spec.GetExportTo()) {
			s.exportRestricted = true
			return
		}
	}
}

func (s *Snapshot) cachedDRViewKey(ns string) string {
	if s.drViewKeys == nil {
		return s.DestinationRuleViewKey(ns)
	}
	if k, ok := s.drViewKeys.Load(ns); ok {
		return k.(string)
	}
	k := s.DestinationRuleViewKey(ns)
	s.drViewKeys.Store(ns, k)
	return k
}
