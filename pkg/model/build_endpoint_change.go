package model

import (
	"maps"
	"slices"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An endpoint change (a pod of a Deployment coming or going) changes one
// EndpointSlice. A full build reads every object again: at 1,000 services
// that was 5 ms on the path of every endpoint push, before the push could
// start, and it grows with the mesh, not with the change. So when the inputs
// are the last build's (same HashCache) except for EndpointSlices, Build
// starts from the last snapshot and converts only the services whose
// slices changed.
//
// It gives up, and the full build runs, whenever the change could reach
// beyond those services' endpoints: a headless service (its endpoints are
// listeners), a service account behind a service that is new or gone (SAN
// checks, ConfigHash), endpoints gaining or losing localities, a slice that
// is malformed, a service whose endpoints come or would come from its pods
// instead. TestEndpointChangeBuildEqualsFullBuild holds it to the full
// build's result.

// lastBuild is what a build left for the next one to start from.
type lastBuild struct {
	snap *Snapshot
	// inputs are snap's, copied: a caller may reuse its Inputs and slices.
	inputs Inputs
	// errors are snap's as built: a caller may replace snap.Errors.
	errors []ConfigError
}

func (c *HashCache) remember(s *Snapshot, in *Inputs) {
	if c == nil {
		return
	}
	last := lastBuild{snap: s, inputs: cloneInputs(in), errors: slices.Clip(s.Errors)}
	c.mu.Lock()
	c.last = last
	c.mu.Unlock()
}

// buildEndpointChange builds in from the last snapshot when only
// EndpointSlices differ from its inputs; nil when it cannot.
func buildEndpointChange(in *Inputs, version uint64) *Snapshot {
	c := in.Hashes
	if c == nil {
		return nil
	}
	c.mu.Lock()
	last, memo := c.last, c.endpoints
	same := last.snap != nil && sameButSlices(c, &last.inputs, in)
	c.mu.Unlock()
	prev := last.snap
	if !same || memo == nil || memo.index == nil {
		return nil
	}
	for _, e := range last.errors {
		if e.Kind == "EndpointSlice" {
			return nil // some slice is cleaned: checkAddresses' business
		}
	}
	// The services whose slices changed, as (namespace, name).
	old := make(map[*discoveryv1.EndpointSlice]bool, len(last.inputs.EndpointSlices))
	for _, es := range last.inputs.EndpointSlices {
		old[es] = true
	}
	affected := map[podName]bool{}
	touch := func(es *discoveryv1.EndpointSlice) bool {
		if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
			affected[podName{es.Namespace, name}] = true
		}
		return ipSlice(es) && !sliceAddressesValid(es)
	}
	for _, es := range in.EndpointSlices {
		if old[es] {
			delete(old, es)
		} else if touch(es) {
			return nil
		}
	}
	for es := range old {
		touch(es) // gone: was valid, there was no EndpointSlice error
	}
	// Their slices now, in input order. Each must have some, now and
	// before: else its endpoints come from its pods (buildEndpoints).
	byHost := map[string][]*discoveryv1.EndpointSlice{}
	withSlices, hadSlices := map[string]bool{}, map[string]bool{}
	hostOf := map[podName]string{}
	for k := range affected {
		hostOf[k] = ServiceHostname(k.name, k.namespace)
	}
	for _, es := range in.EndpointSlices {
		if host, ok := hostOf[podName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]}]; ok {
			withSlices[host] = true
			if ipSlice(es) {
				byHost[host] = append(byHost[host], es)
			}
		}
	}
	for _, es := range last.inputs.EndpointSlices {
		if host, ok := hostOf[podName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]}]; ok {
			hadSlices[host] = true
		}
	}
	s := *prev
	s.Version, s.Inputs, s.Errors = version, in, last.errors
	s.drViewKeys, s.byIP = &sync.Map{}, &ipIndex{}
	s.endpoints = maps.Clone(prev.endpoints)
	next := &endpointMemo{nodes: memo.nodes, pods: memo.pods, index: memo.index, shared: memo.shared, hosts: maps.Clone(memo.hosts)}
	s.epHashes = &endpointHashes{memo: next.hosts}
	td := s.Mesh.GetTrustDomain()
	for _, host := range hostOf {
		svc := prev.services[host]
		if svc == nil {
			continue // slices of no service: not read
		}
		if svc.Headless || svc.FromServiceEntry != "" || svc.ExternalName != "" || !withSlices[host] || !hadSlices[host] {
			return nil
		}
		delete(s.endpoints, host)
		delete(next.hosts, host)
		if slices := byHost[host]; len(slices) > 0 {
			s.convertSlices(host, slices, *next.index, next)
		}
		if !slices.Equal(serviceIdentities(td, svc, s.endpoints[host]), prev.identities[host]) {
			return nil
		}
	}
	if anyLocality(s.endpoints) != prev.endpointLocality {
		return nil
	}
	h := c.begin()
	h.partial = true
	cleaned := *in
	cleaned.Pods = memo.pods // as checkAddresses left them
	s.EndpointsHash = endpointsFingerprint(h, &cleaned)
	h.end()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last.snap != prev || c.endpoints != memo {
		return nil // another build ran meanwhile
	}
	c.endpoints = next
	c.last = lastBuild{snap: &s, inputs: last.inputs, errors: last.errors}
	c.last.inputs.EndpointSlices = slices.Clone(in.EndpointSlices)
	return &s
}

func ipSlice(es *discoveryv1.EndpointSlice) bool {
	return es.AddressType == discoveryv1.AddressTypeIPv4 || es.AddressType == discoveryv1.AddressTypeIPv6
}

// sameButSlices reports whether b holds a's objects of every kind but
// EndpointSlices, and the same HashCache c. An object the fingerprints
// know (c.byObject, held with c.mu) must be at the version they read: a
// source may hand over an object changed in place with a new
// resourceVersion (HashCache), and one without a version may have changed
// unseen.
func sameButSlices(c *HashCache, a, b *Inputs) bool {
	return a.Hashes == b.Hashes &&
		sameObjects(c, a.Namespaces, b.Namespaces, true) &&
		sameObjects(c, a.Services, b.Services, true) &&
		sameObjects(c, a.Pods, b.Pods, true) &&
		sameObjects(c, a.Nodes, b.Nodes, true) &&
		sameObjects(c, a.ServiceAccounts, b.ServiceAccounts, true) &&
		sameObjects(c, a.ConfigMaps, b.ConfigMaps, true) &&
		sameObjects(c, a.Secrets, b.Secrets, false) && // not cached: fingerprint
		sameObjects(c, a.VirtualServices, b.VirtualServices, true) &&
		sameObjects(c, a.DestinationRules, b.DestinationRules, true) &&
		sameObjects(c, a.Gateways, b.Gateways, true) &&
		sameObjects(c, a.ServiceEntries, b.ServiceEntries, true) &&
		sameObjects(c, a.Sidecars, b.Sidecars, true) &&
		sameObjects(c, a.PeerAuthentications, b.PeerAuthentications, true) &&
		sameObjects(c, a.AuthorizationPolicies, b.AuthorizationPolicies, true) &&
		sameObjects(c, a.RequestAuthentications, b.RequestAuthentications, true) &&
		// Read from files only, where there is no HashCache.
		len(b.Deployments) == 0 && len(b.StatefulSets) == 0 && len(b.DaemonSets) == 0 &&
		len(b.ReplicaSets) == 0 && len(b.Jobs) == 0 &&
		sameObjects(c, a.Unimplemented, b.Unimplemented, false)
}

func sameObjects[P interface {
	comparable
	GetObjectMeta() metav1.Object
}](c *HashCache, a, b []P, versioned bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
		if versioned {
			m, _ := b[i].GetObjectMeta().(*metav1.ObjectMeta)
			if e := c.byObject[m]; m == nil || e == nil || e.resourceVersion != m.ResourceVersion {
				return false
			}
		}
	}
	return true
}

// cloneInputs copies in and its slices (not the objects).
func cloneInputs(in *Inputs) Inputs {
	out := *in
	out.Namespaces = slices.Clone(in.Namespaces)
	out.Services = slices.Clone(in.Services)
	out.EndpointSlices = slices.Clone(in.EndpointSlices)
	out.Pods = slices.Clone(in.Pods)
	out.Nodes = slices.Clone(in.Nodes)
	out.ServiceAccounts = slices.Clone(in.ServiceAccounts)
	out.ConfigMaps = slices.Clone(in.ConfigMaps)
	out.Secrets = slices.Clone(in.Secrets)
	out.VirtualServices = slices.Clone(in.VirtualServices)
	out.DestinationRules = slices.Clone(in.DestinationRules)
	out.Gateways = slices.Clone(in.Gateways)
	out.ServiceEntries = slices.Clone(in.ServiceEntries)
	out.Sidecars = slices.Clone(in.Sidecars)
	out.PeerAuthentications = slices.Clone(in.PeerAuthentications)
	out.AuthorizationPolicies = slices.Clone(in.AuthorizationPolicies)
	out.RequestAuthentications = slices.Clone(in.RequestAuthentications)
	out.Deployments = slices.Clone(in.Deployments)
	out.StatefulSets = slices.Clone(in.StatefulSets)
	out.DaemonSets = slices.Clone(in.DaemonSets)
	out.ReplicaSets = slices.Clone(in.ReplicaSets)
	out.Jobs = slices.Clone(in.Jobs)
	out.Unimplemented = slices.Clone(in.Unimplemented)
	return out
}
