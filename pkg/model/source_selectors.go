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
	sort.SliceStable(s.sources.list, func(i, j int) bool {
		return selectorString(s.sources.list[i]) < selectorString(s.sources.list[j])
	})
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
	var b strings.Builder
	for _, sel := range s.sources.list {
		if LabelsMatch(sel, labels) {
			b.WriteString("{" + selectorString(sel) + "}")
		}
	}
	return b.String()
}
