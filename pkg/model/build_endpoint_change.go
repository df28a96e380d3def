package model

import (
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An endpoint change (a pod of a Deployment coming or going) changes one
// EndpointSlice and that pod. A full build reads every object again: at
// 1,000 services that was 5 ms on the path of every endpoint push, before
// the push could start, and it grows with the mesh, not with the change. So
// when the inputs are the last build's (same HashCache) except for
// EndpointSlices and Pods, Build starts from the last snapshot and converts
// again only the services whose slices changed or whose endpoints are
// matched to a pod that changed.
//
// It gives up, and the full build runs, whenever the change could reach
// beyond those services' endpoints: a headless service (its endpoints are
// listeners), a service account behind a service that is new or gone (SAN
// checks, ConfigHash), endpoints gaining or losing localities, a malformed
// slice or pod, a service whose endpoints come or would come from its pods
// instead, a pod a Gateway selects. TestEndpointChangeBuildEqualsFullBuild
// holds it to the full build's result.

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
// EndpointSlices and Pods differ from its inputs; nil when it cannot.
func buildEndpointChange(in *Inputs, version uint64) *Snapshot {
	c := in.Hashes
	if c == nil {
		return nil
	}
	c.mu.Lock()
	last, memo := c.last, c.endpoints
	same := last.snap != nil && sameButEndpoints(c, &last.inputs, in)
	var pods podChange
	if same {
		pods, same = diffPods(c, last.inputs.Pods, in.Pods)
	}
	c.mu.Unlock()
	prev := last.snap
	if !same || memo == nil || memo.index == nil {
		return nil
	}
	for _, e := range last.errors {
		if e.Kind == "EndpointSlice" || e.Kind == "Pod" {
			return nil // something is cleaned: checkAddresses' business
		}
	}
	if !pods.none() && !prev.podChangeStaysInEndpoints(&last.inputs, in, pods) {
		return nil
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
	index := memo.index
	if !pods.none() {
		ix := indexPods(in.Pods)
		index = &ix
		for _, k := range pods.services(memo, in.EndpointSlices, ix) {
			affected[k] = true
		}
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
	next := &endpointMemo{nodes: memo.nodes, pods: in.Pods, index: index, shared: memo.shared, hosts: maps.Clone(memo.hosts)}
	if !pods.none() {
		s.localities = prev.localities.withPods(pods)
	}
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
			s.convertSlices(host, slices, *index, next)
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
	s.EndpointsHash = endpointsFingerprint(h, in) // no Pod or slice is cleaned
	h.end()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last.snap != prev || c.endpoints != memo {
		return nil // another build ran meanwhile
	}
	c.endpoints = next
	c.last = lastBuild{snap: &s, inputs: last.inputs, errors: last.errors}
	c.last.inputs.EndpointSlices = slices.Clone(in.EndpointSlices)
	if !pods.none() {
		c.last.inputs.Pods = slices.Clone(in.Pods)
	}
	return &s
}

func ipSlice(es *discoveryv1.EndpointSlice) bool {
	return es.AddressType == discoveryv1.AddressTypeIPv4 || es.AddressType == discoveryv1.AddressTypeIPv6
}

// sameButEndpoints reports whether b holds a's objects of every kind but
// EndpointSlices and Pods, and the same HashCache c. An object the fingerprints
// know (c.byObject, held with c.mu) must be at the version they read: a
// source may hand over an object changed in place with a new
// resourceVersion (HashCache), and one without a version may have changed
// unseen.
func sameButEndpoints(c *HashCache, a, b *Inputs) bool {
	return a.Hashes == b.Hashes &&
		sameObjects(c, a.Namespaces, b.Namespaces, true) &&
		sameObjects(c, a.Services, b.Services, true) &&
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

// podChange is how the Pods differ from the last build's: the objects no
// longer there and the objects new (a changed Pod is both).
type podChange struct {
	gone, added []*corev1.Pod
}

func (ch podChange) none() bool { return len(ch.gone) == 0 && len(ch.added) == 0 }

// diffPods compares the last build's pods a with b (c.mu held); false when
// a pod kept its object but not the version the fingerprints read.
func diffPods(c *HashCache, a, b []*corev1.Pod) (podChange, bool) {
	if samePointers(a, b) {
		return podChange{}, sameObjects(c, a, b, true)
	}
	old := make(map[*corev1.Pod]bool, len(a))
	for _, p := range a {
		old[p] = true
	}
	var ch podChange
	for _, p := range b {
		if !old[p] {
			ch.added = append(ch.added, p)
			continue
		}
		delete(old, p)
		if e := c.byObject[&p.ObjectMeta]; e == nil || e.resourceVersion != p.ResourceVersion {
			return ch, false
		}
	}
	for p := range old {
		ch.gone = append(ch.gone, p)
	}
	return ch, true
}

// podChangeStaysInEndpoints reports whether pods coming, going or changing
// reach no further than the endpoints matched to them: each parses, no
// Gateway selects it (the gateway checks read pods), no service without
// slices selects it (its endpoints are made of pods), and there are pods
// before and after or neither.
func (s *Snapshot) podChangeStaysInEndpoints(last, in *Inputs, ch podChange) bool {
	if (len(last.Pods) == 0) != (len(in.Pods) == 0) {
		return false
	}
	withSlices := map[podName]bool{}
	for _, es := range in.EndpointSlices {
		withSlices[podName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]}] = true
	}
	for _, es := range last.EndpointSlices {
		withSlices[podName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]}] = true
	}
	local := func(p *corev1.Pod) bool {
		if !(&Snapshot{}).podAddressesOK(p) {
			return false
		}
		for _, gw := range in.Gateways {
			if sel := gw.Spec.GetSelector(); len(sel) > 0 && LabelsMatch(sel, p.Labels) {
				return false
			}
		}
		for _, svc := range s.serviceList {
			if svc.Namespace == p.Namespace && len(svc.Selector) > 0 && svc.FromServiceEntry == "" &&
				!withSlices[podName{svc.Namespace, svc.Name}] && LabelsMatch(svc.Selector, p.Labels) {
				return false
			}
		}
		return true
	}
	for _, p := range ch.gone {
		if !local(p) {
			return false
		}
	}
	for _, p := range ch.added {
		if !local(p) {
			return false
		}
	}
	return true
}

// services are the services, as (namespace, name), whose endpoints were
// matched to a pod now gone (memo) or would now be matched to a new one.
func (ch podChange) services(memo *endpointMemo, slices []*discoveryv1.EndpointSlice, ix podIndex) []podName {
	gone := make(map[*corev1.Pod]bool, len(ch.gone))
	for _, p := range ch.gone {
		gone[p] = true
	}
	var out []podName
	for _, h := range memo.hosts {
		if len(h.slices) == 0 {
			continue
		}
		for _, p := range h.pods {
			if gone[p] {
				es := h.slices[0]
				out = append(out, podName{es.Namespace, es.Labels[discoveryv1.LabelServiceName]})
				break
			}
		}
	}
	if len(ch.added) == 0 {
		return out
	}
	added := make(map[*corev1.Pod]bool, len(ch.added))
	for _, p := range ch.added {
		added[p] = true
	}
	ix.eachAddress(slices, func(es *discoveryv1.EndpointSlice, _ *discoveryv1.Endpoint, _ string, pod *corev1.Pod) bool {
		if added[pod] {
			if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
				out = append(out, podName{es.Namespace, name})
			}
		}
		return true
	})
	return out
}

// withPods is l after the pods changed (nodes unchanged).
func (l *localities) withPods(ch podChange) *localities {
	out := *l
	out.pods = maps.Clone(l.pods)
	for _, p := range ch.gone {
		delete(out.pods, p.Namespace+"/"+p.Name)
	}
	for _, p := range ch.added {
		if loc := out.of(p, nil, nil); !loc.IsZero() {
			out.pods[p.Namespace+"/"+p.Name] = loc
		}
	}
	return &out
}
