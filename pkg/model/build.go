package model

import (
	"encoding/json"
	"hash/fnv"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Build turns a source's raw objects into an immutable Snapshot. Invalid objects
// are dropped with a ConfigError each; Build never fails as a whole, so one bad
// object can never stop the rest of the mesh from updating.
func Build(in *Inputs, version uint64) *Snapshot {
	if s := buildEndpointChange(in, version); s != nil {
		return s
	}
	s := &Snapshot{
		Version:    version,
		Inputs:     in,
		services:   map[string]*Service{},
		drViewKeys: &sync.Map{},
		byIP:       &ipIndex{},
		epHashes:   &endpointHashes{},
	}
	s.Mesh, s.Errors = meshConfigFrom(in.ConfigMaps)
	in = s.checkAddresses(in) // build_addresses.go: what does not parse is left out
	s.buildServices(in)
	s.crossCheckPorts()
	s.buildEndpoints(in)
	s.buildServiceEntries(in)
	s.buildExternalNames(in)
	s.buildDestinationRules(in)
	s.creds = buildCredentials(in.Secrets)
	s.buildGateways(in)
	s.buildVirtualServices(in)
	s.Errors = append(s.Errors, s.checkGatewayServerRoutes()...)
	s.buildSourceSelectors()
	s.buildSidecars(in)
	s.buildAuthorizationPolicies(in)
	s.buildRequestAuthentications(in)
	s.buildPeerAuthentications(in)
	s.noteExportRestrictions()
	s.reportUnimplemented(in)
	s.reportIgnoredInputs(in) // coverage.go
	s.noteLocalityUse()       // after DestinationRules and endpoints
	ids := s.buildServiceIdentities()
	s.ConfigHash, s.EndpointsHash = fingerprint(in)
	s.ConfigHash = mixHash(s.ConfigHash, ids)
	for _, svc := range s.serviceList {
		for _, p := range svc.Ports {
			s.sniffedPorts = s.sniffedPorts || p.Protocol.IsSniffed()
		}
	}
	// A headless service's endpoints shape listeners and clusters (one
	// listener per pod, mTLS if every pod has a sidecar): they are config.
	for _, svc := range s.serviceList {
		if svc.Headless {
			s.ConfigHash = mixHash(s.ConfigHash, mixHash(fnvString(fnvOffset, svc.Hostname), s.EndpointsHashOf(svc.Hostname)))
		}
	}
	in.Hashes.remember(s, s.Inputs)
	return s
}

func (s *Snapshot) addError(e ConfigError) { s.Errors = append(s.Errors, e) }

func (s *Snapshot) buildServices(in *Inputs) {
	for _, svc := range in.Services {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue // aliases or DNS services, once every host is known (externalname.go)
		}
		out := &Service{
			Hostname:  ServiceHostname(svc.Name, svc.Namespace),
			Name:      svc.Name,
			Namespace: svc.Namespace,
			ClusterIP: svc.Spec.ClusterIP,
			Selector:  svc.Spec.Selector,
			ExportTo:  exportTo(splitList(svc.Annotations[AnnotationExportTo]), svc.Namespace),
		}
		if out.ClusterIP == corev1.ClusterIPNone {
			out.ClusterIP = ""
			out.Headless = true
			out.Resolution = ResolutionPassthrough
		}
		for _, p := range svc.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue // Envoy proxies TCP only; UDP/SCTP ports are left alone as in Istio
			}
			out.Ports = append(out.Ports, &Port{Name: p.Name, Port: uint32(p.Port), Protocol: PortProtocol(p.Name, p.AppProtocol)})
		}
		sort.Slice(out.Ports, func(i, j int) bool { return out.Ports[i].Port < out.Ports[j].Port })
		s.services[out.Hostname] = out
	}
	for _, h := range sortedKeys(s.services) {
		s.serviceList = append(s.serviceList, s.services[h])
	}
}

// buildEndpoints reads EndpointSlices; a service with a selector but no slice at
// all gets its endpoints from matching Pods, so a YAML directory of Pods works too.
// With a HashCache, a service whose slices, pods and nodes are the last
// build's keeps the last build's endpoints (endpoints_memo.go).
func (s *Snapshot) buildEndpoints(in *Inputs) {
	s.endpoints = make(map[string][]*Endpoint, len(s.serviceList))
	s.localities = newLocalities(in)
	prev, next := in.Hashes.beginEndpoints(in.Nodes, in.Pods)
	defer in.Hashes.endEndpoints(next)
	if next != nil {
		s.localities.shared = next.shared
		s.epHashes.memo = next.hosts // never written once this build is done
	}
	samePods := prev != nil && prev.index != nil && samePointers(prev.pods, in.Pods)
	var pods podIndex
	if samePods {
		pods = *prev.index
	} else {
		pods = indexPods(in.Pods)
	}
	if next != nil {
		next.index = &pods
	}
	withSlices := map[string]bool{}
	// hostname -> its slices in input order
	byHost := make(map[string][]*discoveryv1.EndpointSlice, len(s.serviceList))
	for _, es := range in.EndpointSlices {
		svcName := es.Labels[discoveryv1.LabelServiceName]
		if svcName == "" {
			continue
		}
		host := ServiceHostname(svcName, es.Namespace)
		withSlices[host] = true
		if s.services[host] == nil {
			continue
		}
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		byHost[host] = append(byHost[host], es)
	}
	for host, slices := range byHost {
		if prev != nil {
			match := func(visit func(*corev1.Pod) bool) bool {
				return pods.eachAddress(slices, func(_ *discoveryv1.EndpointSlice, _ *discoveryv1.Endpoint, _ string, pod *corev1.Pod) bool {
					return visit(pod)
				})
			}
			if samePods {
				match = nil
			}
			if h := prev.hosts[host]; h.reusable(slices, match) {
				s.setEndpoints(host, h.list)
				next.hosts[host] = h
				continue
			}
		}
		s.convertSlices(host, slices, pods, next)
	}
	for _, svc := range s.serviceList {
		if withSlices[svc.Hostname] || len(svc.Selector) == 0 {
			continue
		}
		if list := podEndpoints(svc, in, s.localities); len(list) > 0 {
			s.endpoints[svc.Hostname] = sortedByAddress(list)
		}
	}
}

// convertSlices makes a service's endpoints of its slices and records them
// in the memo (next, when there is one).
func (s *Snapshot) convertSlices(host string, slices []*discoveryv1.EndpointSlice, pods podIndex, next *endpointMemo) {
	list, matched := s.sliceEndpoints(pods, slices, next != nil)
	s.setEndpoints(host, list)
	if next != nil {
		next.hosts[host] = &hostEndpoints{slices: slices, pods: matched, list: list}
	}
}

// podEndpoints are the endpoints of a service without slices: its
// selector's running pods, unsorted.
func podEndpoints(svc *Service, in *Inputs, loc *localities) []*Endpoint {
	var list []*Endpoint
	for _, pod := range in.Pods {
		if pod.Namespace != svc.Namespace || pod.Status.PodIP == "" || !LabelsMatch(svc.Selector, pod.Labels) || pod.DeletionTimestamp != nil {
			continue
		}
		list = append(list, &Endpoint{Address: pod.Status.PodIP, Ports: podPorts(svc, in.Services, pod), Labels: pod.Labels,
			ServiceAccount: pod.Spec.ServiceAccountName, PodName: pod.Name, Namespace: pod.Namespace,
			Locality: loc.endpoint(pod, nil, nil)})
	}
	return list
}

// setEndpoints records a service's endpoints; one whose slices have no
// ready address has none, as one without slices.
func (s *Snapshot) setEndpoints(host string, list []*Endpoint) {
	if len(list) > 0 {
		s.endpoints[host] = list
	}
}

// sliceEndpoints converts one service's slices: its ready addresses, each
// with its pod's labels, service account and locality, sorted by address.
// With record, it also returns the pod each address was matched with.
func (s *Snapshot) sliceEndpoints(pods podIndex, slices []*discoveryv1.EndpointSlice, record bool) ([]*Endpoint, []*corev1.Pod) {
	var list []*Endpoint
	var matched []*corev1.Pod
	var cur *discoveryv1.EndpointSlice
	var ports map[string]uint32
	pods.eachAddress(slices, func(es *discoveryv1.EndpointSlice, ep *discoveryv1.Endpoint, addr string, pod *corev1.Pod) bool {
		if es != cur {
			cur, ports = es, slicePorts(es)
		}
		e := &Endpoint{Address: addr, Ports: ports, Namespace: es.Namespace}
		if pod != nil {
			e.Labels, e.ServiceAccount, e.PodName = pod.Labels, pod.Spec.ServiceAccountName, pod.Name
		}
		e.Locality = s.localities.endpoint(pod, ep.NodeName, ep.Zone)
		list = append(list, e)
		if record {
			matched = append(matched, pod)
		}
		return true
	})
	return sortedByAddress(list), matched
}

// slicePorts maps a slice's port names to their numbers.
func slicePorts(es *discoveryv1.EndpointSlice) map[string]uint32 {
	ports := map[string]uint32{}
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		ports[name] = uint32(*p.Port)
	}
	return ports
}

// podIndex finds the pod behind an endpoint: by its targetRef, else by
// address.
type podIndex struct {
	byName map[podName]*corev1.Pod
	byIP   map[string]*corev1.Pod
}

type podName struct{ namespace, name string }

func indexPods(pods []*corev1.Pod) podIndex {
	ix := podIndex{byName: make(map[podName]*corev1.Pod, len(pods)), byIP: make(map[string]*corev1.Pod, len(pods))}
	for _, p := range pods {
		ix.byName[podName{p.Namespace, p.Name}] = p
		if p.Status.PodIP != "" {
			ix.byIP[p.Status.PodIP] = p
		}
	}
	return ix
}

// eachAddress calls fn for every address of the slices' ready endpoints,
// in order, with the pod it belongs to (nil: none found), until fn returns
// false; it reports whether fn always returned true. The conversion and the
// memo's check walk the same way.
func (ix podIndex) eachAddress(slices []*discoveryv1.EndpointSlice, fn func(*discoveryv1.EndpointSlice, *discoveryv1.Endpoint, string, *corev1.Pod) bool) bool {
	for _, es := range slices {
		for i := range es.Endpoints {
			ep := &es.Endpoints[i]
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			var pod *corev1.Pod
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				ns := ep.TargetRef.Namespace
				if ns == "" {
					ns = es.Namespace
				}
				pod = ix.byName[podName{ns, ep.TargetRef.Name}]
			}
			for _, addr := range ep.Addresses {
				if pod == nil {
					pod = ix.byIP[addr]
				}
				if !fn(es, ep, addr, pod) {
					return false
				}
			}
		}
	}
	return true
}

// sortedByAddress sorts endpoints by address, keeping only the last one
// listed of each address (a map by address did the same, at a map and a
// string sort per service and build).
func sortedByAddress(list []*Endpoint) []*Endpoint {
	slices.SortStableFunc(list, func(a, b *Endpoint) int { return strings.Compare(a.Address, b.Address) })
	out := list[:0]
	for i, e := range list {
		if i+1 < len(list) && list[i+1].Address == e.Address {
			continue // a later entry of the same address wins
		}
		out = append(out, e)
	}
	return slices.Clip(out)
}

// podPorts resolves each service port's targetPort (number or container port name).
func podPorts(svc *Service, services []*corev1.Service, pod *corev1.Pod) map[string]uint32 {
	out := map[string]uint32{}
	for _, k := range services {
		if k.Name != svc.Name || k.Namespace != svc.Namespace {
			continue
		}
		for _, sp := range k.Spec.Ports {
			switch {
			case sp.TargetPort.IntValue() > 0:
				out[sp.Name] = uint32(sp.TargetPort.IntValue())
			case sp.TargetPort.StrVal != "":
				for _, c := range pod.Spec.Containers {
					for _, cp := range c.Ports {
						if cp.Name == sp.TargetPort.StrVal {
							out[sp.Name] = uint32(cp.ContainerPort)
						}
					}
				}
			default:
				out[sp.Name] = uint32(sp.Port)
			}
		}
	}
	return out
}

// buildDestinationRules indexes the valid DestinationRules by namespace and
// exportTo (destinationrule.go). Rules for one host in one namespace merge as in
// istiod instead of the newer one being dropped.
func (s *Snapshot) buildDestinationRules(in *Inputs) {
	s.drs = drIndex{
		rootNamespace: s.Mesh.GetRootNamespace(),
		local:         map[string]*hostDRs{},
		exported:      map[string]*hostDRs{},
		rootLocal:     newHostDRs(),
	}
	defaultPrivate := false
	for _, e := range s.Mesh.GetDefaultDestinationRuleExportTo() {
		if e == exportPrivate {
			defaultPrivate = true
		}
	}
	for _, dr := range byCreation(in.DestinationRules) {
		errs := ValidateDestinationRule(dr)
		s.Errors = append(s.Errors, errs...)
		if hasErrors(errs) {
			continue
		}
		if dr.Spec.GetWorkloadSelector() != nil {
			// Applying it to the whole namespace would be wrong, and per-workload
			// clusters are not built yet: leave it out, loudly.
			s.addError(ConfigError{Kind: "DestinationRule", Namespace: dr.Namespace, Name: dr.Name, Field: "spec.workloadSelector",
				Code: "UnsupportedField", Warning: true, Message: "workloadSelector is not supported yet; this DestinationRule is ignored"})
			continue
		}
		s.Errors = append(s.Errors, s.drs.add(dr, defaultPrivate)...)
		s.DestinationRules = append(s.DestinationRules, dr)
	}
}

func (s *Snapshot) buildGateways(in *Inputs) {
	for _, gw := range byCreation(in.Gateways) {
		errs := ValidateGateway(gw)
		s.Errors = append(s.Errors, errs...) // warnings too: the Gateway applies, minus what they name
		if hasErrors(errs) {
			continue
		}
		s.Gateways = append(s.Gateways, gw)
		s.Errors = append(s.Errors, s.checkGatewayCredentials(in, gw)...)
	}
	s.Errors = append(s.Errors, s.checkGatewayPortProtocols(in)...)
}

func hasErrors(errs []ConfigError) bool {
	for _, e := range errs {
		if !e.Warning {
			return true
		}
	}
	return false
}

type creationSortable interface {
	GetCreationTimestamp() metav1.Time
	GetNamespace() string
	GetName() string
}

// byCreation orders objects as Istio does for precedence: oldest first, then by
// namespace/name so files without timestamps still give a stable order.
func byCreation[T creationSortable](in []T) []T {
	out := append([]T(nil), in...)
	sort.SliceStable(out, func(i, j int) bool {
		ti, tj := out[i].GetCreationTimestamp(), out[j].GetCreationTimestamp()
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		if out[i].GetNamespace() != out[j].GetNamespace() {
			return out[i].GetNamespace() < out[j].GetNamespace()
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

// fingerprint hashes what the model reads of each input, split into config and
// endpoints, so that an endpoint-only change can be told from a config change.
// Fields the model ignores (resourceVersion, managedFields, status of config
// objects) stay out: in a cluster they change all the time and would turn every
// status update into a full rebuild. The encoding need only be stable within
// one process. Each object is hashed on its own and the hashes are combined in
// order; with in.Hashes, an object the apiserver versioned is hashed once per
// resourceVersion, not on every change of any object.
func fingerprint(in *Inputs) (config, endpoints uint64) {
	h := in.Hashes.begin()
	defer h.end()
	c := uint64(fnvOffset)
	// parts is called only for an object not in the cache: its boxed fields
	// were most of a build's allocations.
	add := func(dst *uint64, kind string, m *metav1.ObjectMeta, cacheable bool, parts func() []any) {
		*dst = fnvAdd(*dst, h.object(kind, m, cacheable, parts))
	}
	none := func() []any { return nil }
	for _, o := range in.Namespaces {
		add(&c, "ns", &o.ObjectMeta, true, none)
	}
	for _, o := range in.Services {
		add(&c, "svc", &o.ObjectMeta, true, func() []any { return []any{&o.Spec} })
	}
	for _, o := range in.ServiceAccounts {
		add(&c, "sa", &o.ObjectMeta, true, none)
	}
	for _, o := range in.ConfigMaps {
		add(&c, "cm", &o.ObjectMeta, true, func() []any { return []any{o.Data} })
	}
	// Istio objects: metadata and spec (their status is not read).
	specs := func(kind string, n int, at func(int) (*metav1.ObjectMeta, any)) {
		for i := 0; i < n; i++ {
			m, spec := at(i)
			add(&c, kind, m, true, func() []any { return []any{spec} })
		}
	}
	specs("vs", len(in.VirtualServices), func(i int) (*metav1.ObjectMeta, any) {
		return &in.VirtualServices[i].ObjectMeta, &in.VirtualServices[i].Spec
	})
	specs("dr", len(in.DestinationRules), func(i int) (*metav1.ObjectMeta, any) {
		return &in.DestinationRules[i].ObjectMeta, &in.DestinationRules[i].Spec
	})
	specs("gw", len(in.Gateways), func(i int) (*metav1.ObjectMeta, any) { return &in.Gateways[i].ObjectMeta, &in.Gateways[i].Spec })
	specs("se", len(in.ServiceEntries), func(i int) (*metav1.ObjectMeta, any) {
		return &in.ServiceEntries[i].ObjectMeta, &in.ServiceEntries[i].Spec
	})
	specs("sidecar", len(in.Sidecars), func(i int) (*metav1.ObjectMeta, any) { return &in.Sidecars[i].ObjectMeta, &in.Sidecars[i].Spec })
	specs("pa", len(in.PeerAuthentications), func(i int) (*metav1.ObjectMeta, any) {
		return &in.PeerAuthentications[i].ObjectMeta, &in.PeerAuthentications[i].Spec
	})
	specs("ap", len(in.AuthorizationPolicies), func(i int) (*metav1.ObjectMeta, any) {
		return &in.AuthorizationPolicies[i].ObjectMeta, &in.AuthorizationPolicies[i].Spec
	})
	specs("ra", len(in.RequestAuthentications), func(i int) (*metav1.ObjectMeta, any) {
		return &in.RequestAuthentications[i].ObjectMeta, &in.RequestAuthentications[i].Spec
	})
	// Secrets count by name and usability only: a renewed certificate changes
	// no listener or route, just the SDS secret built from it per generation
	// (xds/gateway_secrets.go), so it must not rebuild everyone's config.
	// Usability depends on the -cacert Secret too: never cached.
	creds := buildCredentials(in.Secrets)
	for _, o := range in.Secrets {
		key := o.Namespace + "/" + o.Name
		cr := creds.ok[key]
		add(&c, "secret", &o.ObjectMeta, false, func() []any { return []any{cr != nil, cr != nil && cr.CACert != nil, creds.invalid[key]} })
	}
	e := endpointsFingerprint(h, in)
	return c, e
}

// endpointsFingerprint is fingerprint's endpoints hash: slices, pods, nodes.
func endpointsFingerprint(h objectHasher, in *Inputs) uint64 {
	e := uint64(fnvOffset)
	add := func(kind string, m *metav1.ObjectMeta, parts func() []any) {
		e = fnvAdd(e, h.object(kind, m, true, parts))
	}
	none := func() []any { return nil }
	for _, o := range in.EndpointSlices {
		add("es", &o.ObjectMeta, func() []any { return []any{o.AddressType, o.Endpoints, o.Ports} })
	}
	for _, o := range in.Pods {
		// Pods matter for their labels, service account and address only, and
		// for their node when Nodes give localities (not boxed otherwise: one
		// allocation per pod and build).
		add("pod", &o.ObjectMeta, func() []any {
			if len(in.Nodes) == 0 {
				return []any{o.Spec.ServiceAccountName, o.Status.PodIP, o.Status.PodIPs, podContainerPorts(o)}
			}
			return []any{o.Spec.ServiceAccountName, o.Status.PodIP, o.Status.PodIPs, podContainerPorts(o), o.Spec.NodeName}
		})
	}
	for _, o := range in.Nodes {
		// Nodes matter for their locality labels only (in the metadata hash).
		add("node", &o.ObjectMeta, none)
	}
	return e
}

// HashCache keeps the fingerprints of apiserver objects across builds, by
// kind, namespace, name, UID and resourceVersion (which changes with every
// write), so a change re-hashes only the objects it touched. A source that
// builds repeatedly hands the same one to every build (Inputs.Hashes). Entries
// of objects that are gone are dropped once they are half the cache.
type HashCache struct {
	mu sync.Mutex
	// hashes are stamped with the last build that read them (gen), so a
	// build marks what it reads in place instead of copying the cache.
	hashes map[hashKey]*stampedHash
	gen    uint64
	live   int // entries stamped by the current build
	// byObject finds the hash of an object the last build read by its
	// address: an informer's objects never change in place, and looking up
	// five strings per object was a quarter of an endpoint change's build
	// at 1,000 services. An entry holds its object, so its address is not
	// reused while the entry lives; entries no build read are dropped once
	// there are more than a few.
	byObject   map[*metav1.ObjectMeta]*objectHash
	objectLive int
	// ignored memoizes ReportIgnoredFields per object version (coverage.go).
	ignored map[hashKey][]IgnoredField
	// endpoints memoizes each service's endpoints (endpoints_memo.go).
	endpoints *endpointMemo
	// last is the last build, for an endpoint change to start from
	// (build_endpoint_change.go).
	last lastBuild
}

type stampedHash struct{ v, gen uint64 }

// objectHash is an object's hash and the resourceVersion it was taken at.
type objectHash struct {
	stampedHash
	resourceVersion string
}

// hashKey names one version of one object. A struct of the object's own
// strings, so a lookup allocates nothing.
type hashKey struct{ kind, namespace, name, uid, resourceVersion string }

// NewHashCache returns an empty cache.
func NewHashCache() *HashCache {
	return &HashCache{hashes: map[hashKey]*stampedHash{}, byObject: map[*metav1.ObjectMeta]*objectHash{}}
}

// objectHasher hashes the objects of one build. A partial one (an
// endpoint change's, build_endpoint_change.go) reads only some kinds, so
// it drops nothing it did not read.
type objectHasher struct {
	c       *HashCache
	partial bool
}

func (c *HashCache) begin() objectHasher {
	if c != nil {
		c.mu.Lock()
		c.gen++
		c.live, c.objectLive = 0, 0
	}
	return objectHasher{c: c}
}

func (h objectHasher) end() {
	c := h.c
	if c == nil {
		return
	}
	if h.partial {
		c.mu.Unlock()
		return
	}
	if len(c.hashes) > 2*c.live+64 {
		for k, e := range c.hashes {
			if e.gen != c.gen {
				delete(c.hashes, k)
			}
		}
	}
	if len(c.byObject) > c.objectLive+64 {
		for k, e := range c.byObject {
			if e.gen != c.gen {
				delete(c.byObject, k)
			}
		}
	}
	c.mu.Unlock()
}

func (h objectHasher) object(kind string, m *metav1.ObjectMeta, cacheable bool, parts func() []any) uint64 {
	if h.c == nil || !cacheable || m.ResourceVersion == "" {
		return hashObject(kind, m, parts)
	}
	if e := h.c.byObject[m]; e != nil && e.resourceVersion == m.ResourceVersion {
		if e.gen != h.c.gen {
			e.gen = h.c.gen
			h.c.objectLive++
		}
		return e.v
	}
	key := hashKey{kind, m.Namespace, m.Name, string(m.UID), m.ResourceVersion}
	e, ok := h.c.hashes[key]
	if !ok {
		e = &stampedHash{v: hashObject(kind, m, parts)}
		h.c.hashes[key] = e
	}
	if e.gen != h.c.gen {
		e.gen = h.c.gen
		h.c.live++
	}
	h.c.byObject[m] = &objectHash{stampedHash{v: e.v, gen: h.c.gen}, m.ResourceVersion}
	h.c.objectLive++
	return e.v
}

// hashObject hashes what of an object a build reads: its metadata and parts.
func hashObject(kind string, m *metav1.ObjectMeta, parts func() []any) uint64 {
	d := fnv.New64a()
	enc := json.NewEncoder(d)
	_ = enc.Encode([]any{kind, m.Namespace, m.Name, m.Labels, m.Annotations, m.CreationTimestamp, m.DeletionTimestamp != nil})
	for _, p := range parts() {
		_ = enc.Encode(p)
	}
	return d.Sum64()
}

func podContainerPorts(p *corev1.Pod) [][]corev1.ContainerPort {
	out := make([][]corev1.ContainerPort, 0, len(p.Spec.Containers))
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports)
	}
	return out
}

// IsIP reports whether s is a literal IP address.
func IsIP(s string) bool { return net.ParseIP(s) != nil }

// HostPort formats a host and port for Envoy domains.
func HostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// hashEndpoints hashes every field of eps (in order: Build sorts them; map
// entries are combined order-free, so nothing is sorted or allocated here).
// The hash of an empty list is not 0, so a host with no endpoints differs from
// an unknown one.
func hashEndpoints(eps []*Endpoint) uint64 {
	h := fnvAdd(fnvOffset, uint64(len(eps)))
	for _, ep := range eps {
		h = fnvString(h, ep.Address)
		h = fnvString(h, ep.ServiceAccount)
		h = fnvString(h, ep.PodName)
		h = fnvString(h, ep.Namespace)
		if l := ep.Locality; l != nil {
			h = fnvString(fnvString(fnvString(h, l.Region), l.Zone), l.SubZone)
		}
		var ports, labels uint64
		for k, v := range ep.Ports {
			ports += mix64(fnvAdd(fnvString(fnvOffset, k), uint64(v)))
		}
		for k, v := range ep.Labels {
			labels += mix64(fnvString(fnvString(fnvOffset, k), v))
		}
		h = fnvAdd(fnvAdd(h, ports), labels)
	}
	return h | 1
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvString is FNV-1a over s's length and bytes, continuing from h.
func fnvString(h uint64, s string) uint64 {
	h = fnvAdd(h, uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// fnvAdd is FNV-1a over v's eight bytes.
func fnvAdd(h, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

// mix64 spreads an entry's hash before entries are summed (splitmix64's
// finalizer), so equal sums from different entries are unlikely.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// EndpointAddressesChangedSince lists the addresses whose endpoint, in s or in
// prev, was added, removed or changed in a service whose endpoints differ
// between the two: the workloads whose own service instances (InstancesAt)
// may differ. The other replicas of such a service keep theirs: a pod of a
// 100-replica Deployment coming or going must not rebuild the inbound side of
// the other 99. Meant for snapshots of the same config.
func (s *Snapshot) EndpointAddressesChangedSince(prev *Snapshot) map[string]bool {
	out := map[string]bool{}
	add := func(host string) {
		if s.EndpointsHashOf(host) == prev.EndpointsHashOf(host) {
			return
		}
		before := make(map[string]*Endpoint, len(prev.endpoints[host]))
		for _, ep := range prev.endpoints[host] {
			before[ep.Address] = ep
		}
		for _, ep := range s.endpoints[host] {
			old, ok := before[ep.Address]
			if !ok || !sameEndpoint(old, ep) {
				out[ep.Address] = true
			}
			delete(before, ep.Address)
		}
		for addr := range before {
			out[addr] = true // gone
		}
	}
	for host := range s.endpoints {
		add(host)
	}
	for host := range prev.endpoints {
		if _, ok := s.endpoints[host]; !ok {
			add(host)
		}
	}
	return out
}

// sameEndpoint: equal in everything a workload's inbound side reads.
func sameEndpoint(a, b *Endpoint) bool {
	return a.Address == b.Address && a.ServiceAccount == b.ServiceAccount && a.PodName == b.PodName &&
		a.Namespace == b.Namespace && maps.Equal(a.Ports, b.Ports) && maps.Equal(a.Labels, b.Labels) &&
		(a.Locality == b.Locality || (a.Locality != nil && b.Locality != nil && *a.Locality == *b.Locality))
}
