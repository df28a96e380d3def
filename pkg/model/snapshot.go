package model

import (
	"sort"
	"strings"
	"sync"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
)

// DefaultDomainSuffix is the cluster DNS suffix of service hostnames.
const DefaultDomainSuffix = "cluster.local"

// Service is one Kubernetes Service or one host of a ServiceEntry, keyed by hostname.
type Service struct {
	Hostname  string // name.namespace.svc.cluster.local, or a ServiceEntry host as written
	Name      string
	Namespace string
	// ClusterIP is the VIP clients dial: the Service's cluster IP or the
	// ServiceEntry's first address; empty for headless services.
	ClusterIP string
	Ports     []*Port
	Selector  map[string]string

	// MeshExternal is a ServiceEntry with location MESH_EXTERNAL.
	MeshExternal bool
	Resolution   Resolution
	// ExportTo lists the namespaces that may see the service; nil means all
	// ("*"). From a ServiceEntry's exportTo or a Service's
	// networking.istio.io/exportTo annotation, "." resolved to the own namespace.
	ExportTo map[string]bool
	// FromServiceEntry names the ServiceEntry (ns/name) the host came from.
	FromServiceEntry string
	// Headless is a Kubernetes Service with clusterIP None: clients dial its
	// pods' own addresses (resolution Passthrough, as in istiod), so sidecars
	// get a listener per endpoint and original-destination clusters, and the
	// endpoints are config (a change rebuilds listeners, as istiod's full push).
	Headless bool
	// Aliases are the FQDNs of ExternalName Services that name this host
	// (istiod's alias resolution): clients using them reach this service.
	Aliases []string
	// ExternalName is the DNS name an ExternalName Service points at when no
	// service of the mesh has it: mizzen reaches it with a DNS cluster.
	ExternalName string
	// SubjectAltNames are a ServiceEntry's subjectAltNames: the identities its
	// endpoints may present to Istio mTLS, instead of the ones mizzen derives.
	SubjectAltNames []string
}

// Resolution is how Envoy finds a service's endpoints.
type Resolution int

const (
	// ResolutionEDS: mizzen knows the endpoints (Kubernetes, ServiceEntry STATIC).
	ResolutionEDS Resolution = iota
	// ResolutionDNS: Envoy resolves the endpoints' hostnames (ServiceEntry DNS).
	ResolutionDNS
	// ResolutionDNSRoundRobin: Envoy resolves and uses one address at a time.
	ResolutionDNSRoundRobin
	// ResolutionPassthrough: connect to the original destination (ServiceEntry
	// NONE, headless Kubernetes Services).
	ResolutionPassthrough
)

// VisibleTo reports whether a proxy in namespace ns may see the service.
func (s *Service) VisibleTo(ns string) bool {
	return s.ExportTo == nil || s.ExportTo["*"] || s.ExportTo[ns]
}

// Port is a service port with the protocol Envoy should speak on it.
type Port struct {
	Name     string
	Port     uint32
	Protocol Protocol
	// TargetPort is a ServiceEntry port's targetPort: the endpoints' port when an
	// endpoint does not name one (0: same as Port).
	TargetPort uint32
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
	// Locality is where the endpoint runs (region/zone/subzone: locality.go),
	// nil when unknown; endpoints of one locality share one value.
	Locality *Locality
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
	// creds: gateway credentials from Secrets (credentials.go).
	creds    credentials
	sidecars []*networking.Sidecar
	// authzPolicies: valid AuthorizationPolicies by namespace and name (authorization.go).
	authzPolicies []*AuthzPolicy
	// requestAuthns holds the valid RequestAuthentications, oldest first.
	requestAuthns []*security.RequestAuthentication
	// peerAuthns: valid PeerAuthentications by level (peerauthentication.go).
	peerAuthns peerAuthns
	// identities: SPIFFE IDs behind each service, by hostname (identity.go).
	identities map[string][]string
	// clientMTLS: the view is for proxies that hold a workload certificate, so
	// their outbound clusters may originate Istio mTLS (Scope.ClientMTLS).
	clientMTLS bool
	// agentSDS: those certificates come from istio-agent's SDS (Scope.AgentSDS).
	agentSDS bool
	// sources: the sourceLabels selectors of VirtualService matches (source_selectors.go).
	sources sourceSelectors
	// exportRestricted: some object limits its visibility (exportTo), so what a
	// proxy sees depends on its namespace.
	exportRestricted bool
	// viewerNS is the proxy namespace a View was made for: DestinationRule
	// resolves as a proxy of that namespace sees it.
	viewerNS string
	// drViewKeys memoizes DestinationRuleViewKey per namespace (derived data,
	// shared by the snapshot and its views).
	drViewKeys *sync.Map
	byIP       *ipIndex
	epHashes   *endpointHashes
	// localities: the nodes' and pods' localities (locality.go);
	// localityLB: some cluster balances by locality, so endpoints depend on
	// the viewer's locality (Scope.Locality); viewerLocality is a View's.
	// sniffedPorts: some service port is sniffed (gateways then get clusters
	// of their own: Scope.Router); router: the view is a gateway's.
	sniffedPorts   bool
	router         bool
	localities     *localities
	localityLB     bool
	viewerLocality Locality
	// endpointLocality: some endpoint has a locality (noteLocalityUse).
	endpointLocality bool

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

// ForRouter reports whether the view is a gateway's (Scope.Router).
func (s *Snapshot) ForRouter() bool { return s.router }

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

// Instance is one endpoint of one service: what a workload serves.
type Instance struct {
	Service  *Service
	Endpoint *Endpoint
}

// InstancesAt returns the service instances at an address (a workload's own
// endpoints), in service hostname order. The index is built on first use.
func (s *Snapshot) InstancesAt(ip string) []Instance {
	s.byIP.once.Do(func() {
		s.byIP.m = map[string][]Instance{}
		for _, svc := range s.serviceList {
			for _, ep := range s.endpoints[svc.Hostname] {
				s.byIP.m[ep.Address] = append(s.byIP.m[ep.Address], Instance{Service: svc, Endpoint: ep})
			}
		}
	})
	return s.byIP.m[ip]
}

// EndpointsHashOf is a hash of what the model knows of the endpoints of the
// service with that FQDN (addresses, ports, labels, identity): equal across
// snapshots exactly when those endpoints are equal, so a consumer can keep
// what it built from them. Computed for every host on first use.
func (s *Snapshot) EndpointsHashOf(hostname string) uint64 {
	s.epHashes.once.Do(func() {
		s.epHashes.m = make(map[string]uint64, len(s.endpoints))
		for host, eps := range s.endpoints {
			s.epHashes.m[host] = s.epHashes.hash(host, eps)
		}
		s.epHashes.memo = nil
	})
	return s.epHashes.m[hostname]
}

// endpointHashes is derived data, like ipIndex; views share the full
// snapshot's (a view restricts services, not their endpoints).
type endpointHashes struct {
	once sync.Once
	m    map[string]uint64
	// memo is the endpoint memo's entries of this build (with a
	// HashCache): a host whose endpoints are an entry's list takes the
	// entry's hash, computed once for every snapshot that shares the list.
	memo map[string]*hostEndpoints
}

func (e *endpointHashes) hash(host string, eps []*Endpoint) uint64 {
	he := e.memo[host]
	if he == nil || len(eps) == 0 || len(he.list) != len(eps) || &he.list[0] != &eps[0] {
		return hashEndpoints(eps)
	}
	h := he.hash.Load()
	if h == 0 {
		h = hashEndpoints(eps) // never 0
		he.hash.Store(h)
	}
	return h
}

// ipIndex is derived data, built once per snapshot; views share the full
// snapshot's, since a workload's own instances do not depend on what it sees.
type ipIndex struct {
	once sync.Once
	m    map[string][]Instance
}
