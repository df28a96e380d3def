package model

import (
	"fmt"
	"hash/fnv"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// DestinationRule visibility, as istiod resolves it (PushContext.destinationRule):
//
//  1. DestinationRules of the proxy's own namespace (every rule visible there: no
//     exportTo, ".", "*" or the namespace itself). A proxy in the root namespace
//     looks only at the root namespace's private rules here.
//  2. Rules of the service's namespace that are exported to the proxy's namespace.
//  3. Rules of the root namespace (meshConfig.rootNamespace) exported to it.
//
// The first step with a host match decides, exact hosts before the most specific
// wildcard; within it the last visible entry wins (istiod's catch-all choice).
// Several rules for one host in one namespace with the same exportTo are merged
// the way istiod merges them: oldest first, subsets with new names appended, the
// first top-level trafficPolicy kept.

// Visibility values of exportTo.
const (
	exportPrivate = "."
	exportPublic  = "*"
)

// drEntry is one consolidated DestinationRule for a host within one namespace index.
type drEntry struct {
	rule     *networking.DestinationRule // merged; Name/Namespace of the first contributor
	exportTo map[string]bool             // raw exportTo values; empty means the mesh default
	from     []string                    // "<ns>/<name>" of every contributor, oldest first
}

func (e *drEntry) id() string { return strings.Join(e.from, "+") }

func (e *drEntry) idOrEmpty() string {
	if e == nil {
		return ""
	}
	return e.id()
}

// visibleTo reports whether an exported entry is visible to a client namespace.
func (e *drEntry) visibleTo(ns string) bool {
	return len(e.exportTo) == 0 || e.exportTo[exportPublic] || e.exportTo[ns]
}

// hostDRs indexes the consolidated rules of one namespace by host.
type hostDRs struct {
	specific map[string][]*drEntry
	wildcard map[string][]*drEntry
}

func newHostDRs() *hostDRs {
	return &hostDRs{specific: map[string][]*drEntry{}, wildcard: map[string][]*drEntry{}}
}

// match returns the entries of the most specific host matching hostname.
func (h *hostDRs) match(hostname string) []*drEntry {
	if h == nil {
		return nil
	}
	if e, ok := h.specific[hostname]; ok {
		return e
	}
	var best []*drEntry
	bestLen := -1
	for pattern, e := range h.wildcard {
		if wildcardMatches(pattern, hostname) && len(pattern) > bestLen {
			best, bestLen = e, len(pattern)
		}
	}
	return best
}

func wildcardMatches(pattern, hostname string) bool {
	return pattern == "*" || (strings.HasPrefix(pattern, "*") && strings.HasSuffix(hostname, pattern[1:]))
}

// drIndex is the snapshot's DestinationRule index.
type drIndex struct {
	rootNamespace string
	// local: rules a proxy of the namespace sees first (step 1).
	local map[string]*hostDRs
	// exported: rules other namespaces may see (steps 2 and 3).
	exported map[string]*hostDRs
	// rootLocal: private rules of the root namespace, step 1 for proxies there.
	rootLocal *hostDRs
}

// add indexes one valid DestinationRule (callers add oldest first) and returns
// warnings about subsets dropped while merging.
func (ix *drIndex) add(dr *networking.DestinationRule, meshDefaultPrivate bool) []ConfigError {
	exportTo := map[string]bool{}
	for _, e := range dr.Spec.GetExportTo() {
		exportTo[e] = true
	}
	ns := dr.Namespace
	var warnings []ConfigError
	if len(exportTo) == 0 || exportTo[exportPublic] || exportTo[exportPrivate] || exportTo[ns] {
		if ix.local[ns] == nil {
			ix.local[ns] = newHostDRs()
		}
		warnings = append(warnings, mergeInto(ix.local[ns], dr, exportTo)...)
	}
	privateOnly := (len(exportTo) == 0 && meshDefaultPrivate) ||
		(len(exportTo) == 1 && (exportTo[exportPrivate] || exportTo[ns]))
	switch {
	case !privateOnly:
		if ix.exported[ns] == nil {
			ix.exported[ns] = newHostDRs()
		}
		warnings = append(warnings, mergeInto(ix.exported[ns], dr, exportTo)...)
	case ns == ix.rootNamespace:
		warnings = append(warnings, mergeInto(ix.rootLocal, dr, exportTo)...)
	}
	// The same merge may happen in several indexes; report each problem once.
	seen := map[string]bool{}
	out := warnings[:0]
	for _, w := range warnings {
		if !seen[w.Error()] {
			seen[w.Error()] = true
			out = append(out, w)
		}
	}
	return out
}

// mergeInto adds dr to the host's entries: it merges into every entry whose
// exportTo equals its own or is a non-empty subset of it, as istiod's enhanced
// DestinationRule merge does, and stands alone when the last entry looked at
// could not take it.
func mergeInto(h *hostDRs, dr *networking.DestinationRule, exportTo map[string]bool) []ConfigError {
	host := ResolveHost(dr.Spec.GetHost(), dr.Namespace)
	byHost := h.specific
	if strings.HasPrefix(host, "*") {
		byHost = h.wildcard
	}
	self := &drEntry{rule: dr, exportTo: exportTo, from: []string{dr.Namespace + "/" + dr.Name}}
	existing := byHost[host]
	if len(existing) == 0 {
		byHost[host] = []*drEntry{self}
		return nil
	}
	var warnings []ConfigError
	appendSeparately := true
	for _, e := range existing {
		if !sameSet(exportTo, e.exportTo) && (len(e.exportTo) == 0 || !superset(exportTo, e.exportTo)) {
			appendSeparately = true
			continue
		}
		appendSeparately = false
		merged := e.rule.DeepCopy()
		seen := map[string]bool{}
		for _, ss := range merged.Spec.Subsets {
			seen[ss.GetName()] = true
		}
		for i, ss := range dr.Spec.GetSubsets() {
			if seen[ss.GetName()] {
				warnings = append(warnings, ConfigError{Kind: "DestinationRule", Namespace: dr.Namespace, Name: dr.Name,
					Field: fmt.Sprintf("spec.subsets[%d].name", i), Code: "DuplicateSubset", Warning: true,
					Message: fmt.Sprintf("subset %q of host %s is already defined by DestinationRule %s; this one is ignored", ss.GetName(), host, e.from[0])})
				continue
			}
			merged.Spec.Subsets = append(merged.Spec.Subsets, ss)
		}
		if merged.Spec.TrafficPolicy == nil && dr.Spec.GetTrafficPolicy() != nil {
			merged.Spec.TrafficPolicy = dr.Spec.GetTrafficPolicy()
		}
		e.rule = merged
		e.from = append(e.from, self.from[0])
	}
	if appendSeparately {
		byHost[host] = append(existing, self)
	}
	return warnings
}

func sameSet(a, b map[string]bool) bool { return len(a) == len(b) && superset(a, b) }

func superset(a, b map[string]bool) bool {
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

// lookup resolves the consolidated rule for hostname as seen from proxyNS.
func (ix *drIndex) lookup(hostname, proxyNS, serviceNS string) *drEntry {
	if proxyNS != ix.rootNamespace {
		if entries := ix.local[proxyNS].match(hostname); len(entries) > 0 {
			return entries[len(entries)-1]
		}
	} else if entries := ix.rootLocal.match(hostname); len(entries) > 0 {
		return entries[len(entries)-1]
	}
	if serviceNS != "" {
		if e := ix.exportedFrom(serviceNS, hostname, proxyNS); e != nil {
			return e
		}
	}
	return ix.exportedFrom(ix.rootNamespace, hostname, proxyNS)
}

// exportedFrom picks the last rule of owner's namespace for hostname that is
// exported to client. Only the most specific host match is considered, as in istiod.
func (ix *drIndex) exportedFrom(owner, hostname, client string) *drEntry {
	var out *drEntry
	for _, e := range ix.exported[owner].match(hostname) {
		if e.visibleTo(client) {
			out = e
		}
	}
	return out
}

// DestinationRuleFor returns the DestinationRule that applies to traffic from a
// proxy in proxyNamespace to hostname, or nil. Rules for the same host in one
// namespace come back merged into one object named after the oldest of them.
func (s *Snapshot) DestinationRuleFor(hostname, proxyNamespace string) *networking.DestinationRule {
	if e := s.drs.lookup(hostname, proxyNamespace, s.serviceNamespace(hostname)); e != nil {
		return e.rule
	}
	return nil
}

// DestinationRule returns the DestinationRule that applies to hostname in this
// snapshot: in a View, as proxies of the view's namespace see it; in the full
// snapshot, as a proxy sees it whose namespace holds no DestinationRule of its
// own and is named by no exportTo.
func (s *Snapshot) DestinationRule(hostname string) *networking.DestinationRule {
	return s.DestinationRuleFor(hostname, s.viewerNS)
}

// ViewerNamespace is the proxy namespace a View was made for ("" for the
// shared view): the namespace whose DestinationRules its clusters follow.
func (s *Snapshot) ViewerNamespace() string { return s.viewerNS }

func (s *Snapshot) serviceNamespace(hostname string) string {
	if svc := s.services[hostname]; svc != nil {
		return svc.Namespace
	}
	return ""
}

// DestinationRuleViewKey returns a key such that proxies of two namespaces with
// equal keys resolve every service host to the same DestinationRule, so that
// outbound clusters and endpoints (the only resources DestinationRules shape
// before routes) can be built once per key and shared. In a mesh without
// exportTo and without DestinationRules for other namespaces' hosts, every
// namespace except those holding such rules shares the key "". Cost: one lookup
// per service.
func (s *Snapshot) DestinationRuleViewKey(proxyNamespace string) string {
	var b strings.Builder
	for _, svc := range s.serviceList {
		mine := s.drs.lookup(svc.Hostname, proxyNamespace, svc.Namespace)
		public := s.drs.lookup(svc.Hostname, "", svc.Namespace)
		// Entries with the same contributors have the same merged content, whichever
		// index (local, exported) they come from.
		if mine.idOrEmpty() == public.idOrEmpty() {
			continue
		}
		b.WriteString(svc.Hostname)
		b.WriteByte('=')
		b.WriteString(mine.idOrEmpty())
		b.WriteByte(';')
	}
	if b.Len() == 0 {
		return ""
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(b.String()))
	return fmt.Sprintf("%016x", h.Sum64())
}

// subsetDefined reports whether any DestinationRule of any namespace defines the
// subset for hostname; VirtualServices are checked against this, since which rule
// applies depends on the calling proxy.
func (s *Snapshot) subsetDefined(hostname, subset string) bool {
	for _, dr := range s.DestinationRules {
		h := ResolveHost(dr.Spec.GetHost(), dr.Namespace)
		if h != hostname && !wildcardMatches(h, hostname) {
			continue
		}
		if _, ok := SubsetLabels(dr, subset); ok {
			return true
		}
	}
	return false
}
