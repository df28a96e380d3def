package model

import (
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// endpointMemo keeps, per service, the endpoints one build made of its
// EndpointSlices, so that the next build reuses them when nothing they were
// made of changed. An endpoint change in a cluster touches one slice; at
// 1,000 services converting every slice again was half of the model's build
// and on the path of every endpoint push.
//
// What a service's endpoints are made of is compared by identity: the
// slices (a source that rebuilds its inputs hands over the same object while
// the apiserver's resourceVersion is the same: informers' objects are never
// written to), the pod each address was matched with, and the nodes
// (localities). Only a source that passes a HashCache gets the memo; it is
// used by one build at a time (HashCache.mu).
type endpointMemo struct {
	nodes []*corev1.Node
	// pods: when a build's are these, every address finds the pod it found
	// before, and the check of each host's pods is skipped.
	pods []*corev1.Pod
	// index is those pods' index, kept while they are the same.
	index *podIndex
	// shared is the localities' shared values, kept with the nodes they were
	// read from so that reused endpoints and new ones share one value per
	// locality.
	shared map[Locality]*Locality
	hosts  map[string]*hostEndpoints
}

// hostEndpoints is what one service's endpoints were made of, and them.
type hostEndpoints struct {
	slices []*discoveryv1.EndpointSlice
	// pods is the pod each converted address was matched with (nil: none),
	// in conversion order.
	pods []*corev1.Pod
	list []*Endpoint
	// hash is hashEndpoints(list) once a snapshot asked for it (0: not
	// yet): every snapshot that reuses list reuses it too. Hashing 5,000
	// endpoints again was 3 ms at the start of every endpoint push.
	hash atomic.Uint64
}

// beginEndpoints returns the memo to read for this build's nodes (empty
// when they differ from the last build's) and the map its hosts are
// recorded in; endEndpoints keeps it for the next build. Without a cache
// both are nil and nothing is kept.
func (c *HashCache) beginEndpoints(nodes []*corev1.Node, pods []*corev1.Pod) (prev *endpointMemo, next *endpointMemo) {
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	prev = c.endpoints
	if prev == nil || !samePointers(prev.nodes, nodes) {
		prev = &endpointMemo{shared: map[Locality]*Locality{}}
	}
	next = &endpointMemo{nodes: nodes, pods: pods, shared: prev.shared, hosts: make(map[string]*hostEndpoints, len(prev.hosts))}
	return prev, next
}

func (c *HashCache) endEndpoints(next *endpointMemo) {
	if c != nil {
		c.endpoints = next
		c.mu.Unlock()
	}
}

// reusable reports whether h was made of these slices and pods: match
// replays the pod lookups of the conversion (nil: the pods are the same).
func (h *hostEndpoints) reusable(slices []*discoveryv1.EndpointSlice, match func(func(*corev1.Pod) bool) bool) bool {
	if h == nil || !samePointers(h.slices, slices) {
		return false
	}
	if match == nil {
		return true
	}
	i := 0
	return match(func(p *corev1.Pod) bool {
		if i >= len(h.pods) || h.pods[i] != p {
			return false
		}
		i++
		return true
	}) && i == len(h.pods)
}

func samePointers[T any](a, b []*T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
