package model

import (
	"sort"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// DefaultDomainSuffix is the cluster DNS suffix of service hostnames.
const DefaultDomainSuffix = "cluster.local"

// Service is one Kubernetes Service (later also ServiceEntry hosts), keyed by FQDN.
type Service struct {
	Hostname  string // name.namespace.svc.cluster.local
	Name      string
	Namespace string
	ClusterIP string
	Ports     []*Port
	Selector  map[string]string
}

// Port is a service port with the protocol Envoy should speak on it.
type Port struct {
	Name     string
	Port     uint32
	Protocol Protocol
}

// PortByNumber returns the service port with that number, or nil.
func (s *Service) PortByNumber(n uint32) *Port {
	for _, p := range s.Ports {
		if p.Port == n {
			return p
		}
	}
	return nil
}

// Endpoint is one workload instance backing a service.
type Endpoint struct {
	Address string
	// Ports maps the service port name to the port the workload listens on.
	Ports          map[string]uint32
	Labels         map[string]string
	ServiceAccount string
	PodName        string
	Namespace      string
}

// Snapshot is an immutable view of the mesh at one version. Nothing mutates a
// Snapshot after Build returns it; a change builds a new one.
type Snapshot struct {
	Version uint64
	Mesh    *meshv1alpha1.MeshConfig

	services    map[string]*Service
	serviceList []*Service
	endpoints   map[string][]*Endpoint

	// VirtualServices holds only valid objects, oldest first (Istio's precedence).
	VirtualServices []*networking.VirtualService
	// DestinationRules holds only valid objects, oldest first, as written; which one
	// applies to a proxy is DestinationRuleFor's business (destinationrule.go).
	DestinationRules []*networking.DestinationRule
	Gateways         []*networking.Gateway
	drs              drIndex

	// Errors lists every problem found while building; the objects named were skipped
	// (or, for warnings, applied as written).
	Errors []ConfigError

	// ConfigHash covers everything except endpoints, EndpointsHash only endpoints:
	// equal ConfigHash between two snapshots means an endpoint-only change.
	ConfigHash    uint64
	EndpointsHash uint64

	// Inputs is what this snapshot was built from, for debug views.
	Inputs *Inputs
}

// Services returns all services sorted by hostname.
func (s *Snapshot) Services() []*Service { return s.serviceList }

// Service returns the service with that FQDN, or nil.
func (s *Snapshot) Service(hostname string) *Service { return s.services[hostname] }

// Endpoints returns the endpoints of the service with that FQDN, sorted by address.
func (s *Snapshot) Endpoints(hostname string) []*Endpoint { return s.endpoints[hostname] }

// ResolveHost turns a host as written in an Istio object of namespace ns into an
// FQDN: short names (no dot) live in ns, anything with a dot is taken as written,
// exactly as Istio does.
func ResolveHost(host, ns string) string {
	if host == "*" || strings.Contains(host, ".") {
		return host
	}
	return host + "." + ns + ".svc." + DefaultDomainSuffix
}

// ServiceHostname is the FQDN of a Kubernetes service.
func ServiceHostname(name, ns string) string {
	return name + "." + ns + ".svc." + DefaultDomainSuffix
}

// SubsetLabels returns the labels of a named subset of the DestinationRule, and
// whether the subset exists.
func SubsetLabels(dr *networking.DestinationRule, subset string) (map[string]string, bool) {
	if dr == nil {
		return nil, false
	}
	for _, ss := range dr.Spec.GetSubsets() {
		if ss.GetName() == subset {
			return ss.GetLabels(), true
		}
	}
	return nil, false
}

// LabelsMatch reports whether every selector label is present in labels.
func LabelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Subsets returns the subsets of a possibly nil DestinationRule.
func Subsets(dr *networking.DestinationRule) []*networkingapi.Subset {
	if dr == nil {
		return nil
	}
	return dr.Spec.GetSubsets()
}

// HostTrafficPolicy returns the host-level traffic policy of a possibly nil DestinationRule.
func HostTrafficPolicy(dr *networking.DestinationRule) *networkingapi.TrafficPolicy {
	if dr == nil {
		return nil
	}
	return dr.Spec.GetTrafficPolicy()
}
