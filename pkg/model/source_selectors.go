package model

import (
	"sort"
	"strconv"
	"strings"
)

// sourceSelectors are the distinct sourceLabels selectors of every
// VirtualService match (http, tcp, tls; delegates merged into their roots):
// the only way a sidecar's labels shape its outbound routes and L4 listeners.
// Built once per snapshot (buildSourceSelectors).
type sourceSelectors struct {
	list []map[string]string
	// keys[i] is list[i]'s part of a SourceLabelKey, made once per
	// snapshot: every proxy's build asks for its key.
	keys []string
}

func (s *Snapshot) buildSourceSelectors() {
	seen := map[string]bool{}
	add := func(sel map[string]string) {
		if len(sel) == 0 {
			return
		}
		keys := sortedKeys(sel)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(strconv.Quote(k) + "=" + strconv.Quote(sel[k]) + ",")
		}
		if id := b.String(); !seen[id] {
			seen[id] = true
			s.sources.list = append(s.sources.list, sel)
		}
	}
	for _, vs := range s.VirtualServices {
		for _, r := range vs.Spec.GetHttp() {
			for _, m := range r.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
		for _, r := range vs.Spec.GetTcp() {
			for _, m := range r.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
		for _, r := range vs.Spec.GetTls() {
			for _, m := range r.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
	}
	// A stable order, so equal selectors give equal keys across snapshots.
	s.sources.keys = make([]string, len(s.sources.list))
	for i, sel := range s.sources.list {
		s.sources.keys[i] = "{" + selectorString(sel) + "}"
	}
	sort.Stable(byKey(s.sources))
}

// byKey sorts selectors by their keys.
type byKey sourceSelectors

func (b byKey) Len() int           { return len(b.list) }
func (b byKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b byKey) Swap(i, j int) {
	b.list[i], b.list[j] = b.list[j], b.list[i]
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
}

func selectorString(sel map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(sel) {
		b.WriteString(k + "=" + sel[k] + ",")
	}
	return b.String()
}

// SourceLabelKey says which of the mesh's sourceLabels selectors the labels
// match: two sidecars with equal keys (and equal namespace and scope) get the
// same outbound routes and L4 listeners, whatever else their labels say. With
// no sourceLabels anywhere every sidecar's key is "". The key names the
// selectors it matches, so it stays meaningful across snapshots.
func (s *Snapshot) SourceLabelKey(labels map[string]string) string {
	key := ""
	for i, sel := range s.sources.list {
		if LabelsMatch(sel, labels) {
			key += s.sources.keys[i] // one match, the usual case: no copy
		}
	}
	return key
}
