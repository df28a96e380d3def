package model

import (
	"fmt"
	"sort"

	securityapi "istio.io/api/security/v1beta1"
	security "istio.io/client-go/pkg/apis/security/v1"
)

// PeerAuthentication: validation, and the mutual TLS mode a workload port ends
// up with. Translation (inbound filter chains, auto mTLS) is translate/mtls_*.go.

// MTLSMode is the effective mutual TLS mode of a workload port, UNSET resolved.
type MTLSMode int

const (
	// MTLSPermissive accepts both mTLS and plaintext; Istio's default.
	MTLSPermissive MTLSMode = iota
	// MTLSStrict accepts mTLS only.
	MTLSStrict
	// MTLSDisable accepts plaintext only (TLS is passed through untouched).
	MTLSDisable
)

func (m MTLSMode) String() string {
	switch m {
	case MTLSStrict:
		return "STRICT"
	case MTLSDisable:
		return "DISABLE"
	}
	return "PERMISSIVE"
}

// WorkloadMTLS is the composed PeerAuthentication of one workload.
type WorkloadMTLS struct {
	// Mode applies to every port without an entry in PerPort.
	Mode MTLSMode
	// PerPort holds the portLevelMtls of the workload's own policy, keyed by the
	// workload's (target) port, UNSET already replaced by Mode.
	PerPort map[uint32]MTLSMode
}

// ForPort is the mode of one workload (target) port.
func (w WorkloadMTLS) ForPort(port uint32) MTLSMode {
	if m, ok := w.PerPort[port]; ok {
		return m
	}
	return w.Mode
}

// Ports returns the ports with their own mode, sorted.
func (w WorkloadMTLS) Ports() []uint32 {
	out := make([]uint32, 0, len(w.PerPort))
	for p := range w.PerPort {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// peerAuthns indexes the valid PeerAuthentications by level, oldest first in
// each list (Istio: the oldest policy of a level wins).
type peerAuthns struct {
	mesh      *security.PeerAuthentication            // root namespace, no selector
	namespace map[string]*security.PeerAuthentication // no selector, by namespace
	workload  map[string][]*security.PeerAuthentication
}

// ValidatePeerAuthentication returns the problems of one PeerAuthentication, as
// istiod's validation finds them. An object with errors is not applied at all.
func ValidatePeerAuthentication(pa *security.PeerAuthentication) []ConfigError {
	v := validator{kind: "PeerAuthentication", ns: pa.Namespace, name: pa.Name}
	sel := pa.Spec.GetSelector().GetMatchLabels()
	v.labels("spec.selector.matchLabels", sel)
	v.mtlsMode("spec.mtls.mode", pa.Spec.GetMtls())
	if len(pa.Spec.GetPortLevelMtls()) > 0 && len(sel) == 0 {
		// A namespace or mesh policy has no workload whose ports it could name.
		v.fail("spec.portLevelMtls", "PortLevelMtlsWithoutSelector", "portLevelMtls requires a workload selector")
	}
	ports := make([]uint32, 0, len(pa.Spec.GetPortLevelMtls()))
	for p := range pa.Spec.GetPortLevelMtls() {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	for _, p := range ports {
		f := fmt.Sprintf("spec.portLevelMtls[%d]", p)
		if p == 0 || p > 65535 {
			v.fail(f, "InvalidPort", "port must be 1-65535")
		}
		m := pa.Spec.GetPortLevelMtls()[p]
		if m == nil {
			v.fail(f, "MissingField", "port level mtls must not be null")
			continue
		}
		v.mtlsMode(f+".mode", m)
	}
	return v.errs
}

func (v *validator) mtlsMode(f string, m *securityapi.PeerAuthentication_MutualTLS) {
	if _, ok := securityapi.PeerAuthentication_MutualTLS_Mode_name[int32(m.GetMode())]; !ok {
		v.fail(f, "InvalidMTLSMode", fmt.Sprintf("unknown mode %d (want UNSET, DISABLE, PERMISSIVE or STRICT)", m.GetMode()))
	}
}

// buildPeerAuthentications keeps the valid policies, each at its level. A
// selector policy in the root namespace is ignored as in Istio (the root
// namespace holds the mesh-wide policy only); said with a warning.
func (s *Snapshot) buildPeerAuthentications(in *Inputs) {
	s.peerAuthns = peerAuthns{namespace: map[string]*security.PeerAuthentication{}, workload: map[string][]*security.PeerAuthentication{}}
	root := s.Mesh.GetRootNamespace()
	for _, pa := range byCreation(in.PeerAuthentications) {
		errs := ValidatePeerAuthentication(pa)
		s.Errors = append(s.Errors, errs...)
		if hasErrors(errs) {
			continue
		}
		warn := func(msg string) {
			s.addError(ConfigError{Kind: "PeerAuthentication", Namespace: pa.Namespace, Name: pa.Name, Field: "spec.selector",
				Code: "ConflictingPeerAuthentication", Warning: true, Message: msg})
		}
		selected := len(pa.Spec.GetSelector().GetMatchLabels()) > 0
		switch {
		case selected && pa.Namespace == root:
			warn(fmt.Sprintf("a PeerAuthentication with a selector in the root namespace %s is ignored (Istio applies only the mesh-wide one there)", root))
		case selected:
			s.peerAuthns.workload[pa.Namespace] = append(s.peerAuthns.workload[pa.Namespace], pa)
		case pa.Namespace == root:
			if prev := s.peerAuthns.mesh; prev != nil {
				warn(fmt.Sprintf("the mesh already has PeerAuthentication %s without selector (the oldest wins); this one is ignored", prev.Name))
				continue
			}
			s.peerAuthns.mesh = pa
		default:
			if prev := s.peerAuthns.namespace[pa.Namespace]; prev != nil {
				warn(fmt.Sprintf("namespace %s already has PeerAuthentication %s without selector (the oldest wins); this one is ignored", pa.Namespace, prev.Name))
				continue
			}
			s.peerAuthns.namespace[pa.Namespace] = pa
		}
	}
}

// NamespaceMTLSMode is the mode a namespace's workloads get without a
// workload policy: the namespace policy, else the mesh policy, else PERMISSIVE
// (UNSET inherits). Clients use it to guess a service's mode, as istiod's
// BestEffortInferServiceMTLSMode does.
func (s *Snapshot) NamespaceMTLSMode(ns string) MTLSMode {
	mode := MTLSPermissive
	if m, ok := policyMode(paSpec(s.peerAuthns.mesh)); ok {
		mode = m
	}
	if m, ok := policyMode(paSpec(s.peerAuthns.namespace[ns])); ok {
		mode = m
	}
	return mode
}

// MTLSFor composes the PeerAuthentications of a workload with Istio's
// precedence: the oldest policy whose selector matches the workload in its
// namespace, over the namespace's policy without selector, over the mesh-wide
// one in the root namespace, over PERMISSIVE. UNSET inherits from the level
// above; port-level UNSET from the workload level.
func (s *Snapshot) MTLSFor(ns string, labels map[string]string) WorkloadMTLS {
	out := WorkloadMTLS{Mode: s.NamespaceMTLSMode(ns)}
	for _, pa := range s.peerAuthns.workload[ns] {
		if !LabelsMatch(pa.Spec.GetSelector().GetMatchLabels(), labels) {
			continue
		}
		if m, ok := policyMode(&pa.Spec); ok {
			out.Mode = m
		}
		for port, pm := range pa.Spec.GetPortLevelMtls() {
			if out.PerPort == nil {
				out.PerPort = map[uint32]MTLSMode{}
			}
			out.PerPort[port] = out.Mode
			if m, ok := modeOf(pm); ok {
				out.PerPort[port] = m
			}
		}
		break // the oldest matching policy wins
	}
	return out
}

func paSpec(pa *security.PeerAuthentication) *securityapi.PeerAuthentication {
	if pa == nil {
		return nil
	}
	return &pa.Spec
}

// policyMode is the policy's own mode; false for no policy or UNSET.
func policyMode(spec *securityapi.PeerAuthentication) (MTLSMode, bool) {
	if spec == nil {
		return 0, false
	}
	return modeOf(spec.GetMtls())
}

func modeOf(m *securityapi.PeerAuthentication_MutualTLS) (MTLSMode, bool) {
	switch m.GetMode() {
	case securityapi.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict, true
	case securityapi.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive, true
	case securityapi.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable, true
	}
	return 0, false
}
