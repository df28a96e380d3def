package xds

import (
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// endpointsPart builds the load assignments of a view. prev, when not nil, is
// the same scope's part in the previous generation, built from the same config
// out of prevSnap: a service whose endpoints are unchanged keeps prev's items,
// so an endpoint change translates and marshals its own service only (the
// items are immutable; sharing them also keeps their delta encodings).
func endpointsPart(view *model.Snapshot, prev *part, prevSnap *model.Snapshot) (*part, error) {
	groups := translate.OutboundEndpointsByService(view, view.ViewerNamespace())
	byHost := make(map[string][]*item, len(groups))
	n := 0
	if prev != nil {
		n = len(prev.items)
	}
	items := make([]*item, 0, n)
	for _, se := range groups {
		if prev != nil {
			if old, ok := prev.byHost[se.Hostname]; ok && prevSnap.EndpointsHashOf(se.Hostname) == view.EndpointsHashOf(se.Hostname) {
				byHost[se.Hostname] = old
				items = append(items, old...)
				continue
			}
		}
		clas := se.Build()
		built := make([]*item, 0, len(clas))
		for _, cla := range clas {
			it, err := newItem(cla, cla.GetClusterName())
			if err != nil {
				return nil, err
			}
			built = append(built, it)
		}
		byHost[se.Hostname] = built
		items = append(items, built...)
	}
	p, err := partOf(items)
	if err != nil {
		return nil, err
	}
	p.byHost = byHost
	return p, nil
}

// handOverEndpoints gives the endpoint parts built so far to the next
// generation and forgets its own predecessor's parts (prevSnap stays: builds
// from g may still be running, and a snapshot does not chain generations).
func (g *generation) handOverEndpoints() (map[string]*part, *model.Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	parts := make(map[string]*part, len(g.endpoints))
	for k, p := range g.endpoints {
		parts[k] = p
	}
	g.prevEndpoints = nil
	return parts, g.snap
}

// endpointsTouch reports whether an endpoint at one of p's addresses changed
// since the previous generation (only asked when that one had the same config):
// if not, p's own service instances, hence its inbound side, are as they were.
func (g *generation) endpointsTouch(p *model.Proxy) bool {
	g.touchedOnce.Do(func() { g.touched = g.snap.EndpointAddressesChangedSince(g.prevSnap) })
	for _, ip := range p.InstanceIPs {
		if g.touched[ip] {
			return true
		}
	}
	return false
}
