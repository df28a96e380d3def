package xds

import (
	"sort"
	"strings"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Incremental (delta) xDS: istio-agent's default (ISTIO_DELTA_XDS). The stream
// handling is go-control-plane's delta server; this cache answers its watches
// from the same per-proxy resource sets as state of the world. What differs is
// what a response carries: only the resources that changed for this proxy since
// the set it holds (ts.sentSet, a pointer to a shared set: no per-proxy copy of
// names or versions), the names that went away in removed_resources, and each
// resource's own version (its content hash, so a reconnecting Envoy's
// initial_resource_versions tell exactly what it already has).

// maxNonces bounds the delta responses a proxy may have outstanding that we
// still recognise in an ACK; Envoy answers each in order, so a few suffice.
const maxNonces = 8

// sentResponse is a delta response handed to the stream: its version, the
// names it carried (to name what a NACK rejects) and, once written, its nonce.
type sentResponse struct {
	version string
	set     *resourceSet
	nonce   string
	items   []*item
}

// deltaState is the delta protocol state of one type of one proxy.
type deltaState struct {
	// names fingerprints the subscribed names (wildcard: unused); recomputed
	// only when a request changes the subscription, so an ACK costs O(1).
	names    nameSum
	wildcard bool
	// fresh: the next response is the first of this stream; initial holds the
	// versions Envoy said it has (initial_resource_versions), if any.
	fresh   bool
	initial map[string]string
	// responses handed to the stream, oldest first; written ones have nonces.
	responses []sentResponse
}

// dropResponses forgets the n oldest responses (an ACK of one answers the
// older ones too), clearing what the backing array still references.
func (ds *deltaState) dropResponses(n int) {
	kept := copy(ds.responses, ds.responses[n:])
	clear(ds.responses[kept:])
	ds.responses = ds.responses[:kept]
}

// deltaWatch is a parked delta request.
type deltaWatch struct {
	sub *deltaSub
	out chan<- *discovery.DeltaDiscoveryResponse
	// subscribed: names this request newly subscribes (answered even if unchanged).
	subscribed []string
}

// deltaWatch takes every request of a delta stream (deltaserver.go): the
// first of each type (first), subscription changes, ACKs and NACKs. Like
// CreateWatch it answers at once when the proxy lacks something and otherwise
// parks w, the stream's watch of type t (unparked by its cancel function).
func (c *proxyCache) deltaWatch(cn *conn, t typeIndex, req *discovery.DeltaDiscoveryRequest, first bool, w *watch) {
	sub := w.delta.sub
	w.delta.subscribed = req.GetResourceNamesSubscribe()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	ts := &cn.types[t]
	if first || ts.dstate == nil {
		// The first request of this type on a new stream: nothing of what we
		// sent on an earlier stream is known to be held, except what Envoy
		// lists in initial_resource_versions.
		ts.dstate = &deltaState{fresh: true}
		ts.sentSet, ts.sentVersion, ts.queued, ts.resendAll = nil, "", false, false
	}
	if len(req.GetInitialResourceVersions()) > 0 && ts.dstate.fresh {
		ts.dstate.initial = req.GetInitialResourceVersions()
	}
	ds := ts.dstate
	if ds.fresh || len(req.GetResourceNamesSubscribe())+len(req.GetResourceNamesUnsubscribe()) > 0 {
		ds.wildcard = t.wildcard() || sub.wildcard
		ds.names = sumNames(sub.names)
		if set := ts.set; !ds.wildcard && set != nil && len(set.parts) == 1 && ds.names == set.parts[0].allNames() {
			sub.shareNames(set.parts[0].sortedNames())
		}
	}
	c.recordDeltaRequest(cn, t, req)
	c.park(cn, t, w)
}

// recordDeltaRequest does the ACK/NACK bookkeeping of one delta request: the
// nonce it answers says which response it is about.
func (c *proxyCache) recordDeltaRequest(cn *conn, t typeIndex, req *discovery.DeltaDiscoveryRequest) {
	nonce := req.GetResponseNonce()
	if nonce == "" {
		return
	}
	ts := &cn.types[t]
	ds := ts.dstate
	i := 0
	for ; i < len(ds.responses); i++ {
		if ds.responses[i].nonce == nonce {
			break
		}
	}
	if i == len(ds.responses) {
		return // too old to matter, or not ours
	}
	r := ds.responses[i]
	ds.dropResponses(i + 1)
	if req.GetErrorDetail() != nil {
		msg := req.GetErrorDetail().GetMessage()
		c.recordNACK(cn, t, r.version, msg, blamedNames(itemNames(r.items), msg))
		// Envoy applies what it accepts of a delta response and keeps the rest
		// as it was, so we no longer know exactly what it holds: the next
		// change is answered with every watched resource.
		ts.resendAll = true
		return
	}
	c.recordACK(cn, t, r.version)
}

func itemNames(items []*item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.name
	}
	return out
}

// blamedNames are the names among sent that Envoy's rejection message
// mentions (its messages name the listener, cluster or route that failed). A
// name that is part of a longer blamed name is left out.
func blamedNames(sent []string, msg string) []string {
	var out []string
	for _, n := range sent {
		if n != "" && strings.Contains(msg, n) {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	kept := out[:0]
	for _, n := range out {
		sub := false
		for _, k := range kept {
			if strings.Contains(k, n) {
				sub = true
				break
			}
		}
		if !sub {
			kept = append(kept, n)
		}
	}
	if len(kept) == 0 && len(sent) == 1 {
		return sent
	}
	sort.Strings(kept)
	return kept
}

// deltaWatched reports whether the proxy subscribes to name of type t.
func (ts *typeState) deltaWatched(name string) bool {
	if ts.dstate.wildcard {
		return true
	}
	return ts.watch.delta.sub.has(name)
}

// respondDelta answers a parked delta watch with what changed for the proxy
// since the set it holds. Called with cn.mu held, from respondIfNeeded.
func (c *proxyCache) respondDelta(cn *conn, t typeIndex) {
	ts := &cn.types[t]
	w, set, ds := ts.watch.delta, ts.set, ts.dstate
	if set == nil {
		return
	}
	if (t == ldsType || t == rdsType) && c.holding(cn) {
		return
	}
	if !ds.fresh && len(w.subscribed) == 0 && set.version == ts.nackedVersion {
		return // the proxy rejected exactly this; wait for a change
	}
	var rewarm map[string]bool
	if t == edsType && len(cn.rewarm) > 0 {
		rewarm = cn.rewarm
	}
	if !ds.fresh && !ts.resendAll && ts.sentSet == set && len(w.subscribed) == 0 && len(rewarm) == 0 {
		return // an ACK, or a change that gave this proxy nothing new of this type
	}
	var send []*item
	var removed []string
	switch {
	case ds.fresh:
		send, removed = deltaInitial(ts, set, ds.initial)
	case ts.resendAll || ts.sentSet == nil:
		send, removed = deltaAgainst(ts, ts.sentSet, set, true, rewarm, w.subscribed)
	default:
		send, removed = deltaAgainst(ts, ts.sentSet, set, false, rewarm, w.subscribed)
	}
	if !ds.fresh && len(send) == 0 && len(removed) == 0 {
		// Nothing this proxy holds changed: it is at set's version without a
		// response (an ACK still outstanding will be taken as this version).
		if n := len(ds.responses); n > 0 {
			ds.responses[n-1].version = set.version
		} else if ts.sentVersion != set.version {
			c.recordACK(cn, t, set.version)
		}
		ts.sentVersion, ts.sentSet = set.version, set
		if t == edsType {
			cn.rewarm = nil
		}
		return
	}
	var resources []*discovery.Resource
	if len(send) == set.size() {
		// Everything (a first response, mostly): each part in one piece.
		resources = make([]*discovery.Resource, 0, len(set.parts))
		for _, p := range set.parts {
			if len(p.items) > 0 {
				resources = append(resources, p.deltaResourceAll())
			}
		}
	} else {
		resources = make([]*discovery.Resource, len(send))
		for i, it := range send {
			resources[i] = it.deltaResource()
		}
	}
	resp := &discovery.DeltaDiscoveryResponse{
		SystemVersionInfo: set.version, TypeUrl: typeURLs[t], Resources: resources, RemovedResources: removed,
	}
	select {
	case w.out <- resp:
	default:
		// The stream's channel has room for twice every type and each type
		// has at most one response in flight: cannot happen.
		c.log.Error("delta response channel full; dropping response", "proxy", cn.id, "type", typeLabels[t])
		return
	}
	if t == cdsType && ts.sentSet != nil {
		for _, it := range redefinedClusters(ts.sentSet, set, false) {
			if cn.rewarm == nil {
				cn.rewarm = map[string]bool{}
			}
			cn.rewarm[it.name] = true
		}
	}
	if t == edsType {
		cn.rewarm = nil
	}
	if len(ds.responses) >= maxNonces {
		ds.dropResponses(1)
	}
	ds.responses = append(ds.responses, sentResponse{version: set.version, set: set, items: send})
	ds.fresh, ds.initial = false, nil
	ts.watch = nil
	ts.resendAll = false
	ts.sentVersion = set.version
	ts.sentSet = set
	ts.sentAt = time.Now()
	c.metrics.pushes.WithLabelValues(typeLabels[t]).Inc()
}

// deltaInitial is the first response of a stream: every watched resource
// whose version Envoy does not already have, and, of the names it says it has
// (or asked for), those that do not exist.
func deltaInitial(ts *typeState, set *resourceSet, initial map[string]string) (send []*item, removed []string) {
	ds := ts.dstate
	if len(initial) == 0 && len(set.parts) == 1 {
		// A new proxy that holds nothing and watches the whole part (a
		// wildcard, or the part's own names, shared by deltaWatch): all of
		// it, in the part's own sorted slice, which nobody writes. A copy
		// per proxy and type was a tenth of a fleet's warm-up.
		p := set.parts[0]
		if ds.wildcard || sameSlice(ts.watch.delta.sub.names, p.sortedNames()) {
			return p.items, nil
		}
	}
	send = make([]*item, 0, set.size())
	if len(initial) == 0 && ds.wildcard {
		for _, p := range set.parts {
			send = append(send, p.items...)
		}
		return send, nil // everything: sent part by part, in no order of its own
	}
	if ds.wildcard {
		for _, p := range set.parts {
			for _, it := range p.items {
				if initial[it.name] != it.version() {
					send = append(send, it)
				}
			}
		}
	} else {
		for _, n := range ts.watch.delta.sub.names {
			it := set.lookup(n)
			switch {
			case it == nil:
				removed = append(removed, n)
			case initial[n] != it.version():
				send = append(send, it)
			}
		}
	}
	if ds.wildcard {
		for n := range initial {
			if set.lookup(n) == nil {
				removed = append(removed, n)
			}
		}
	}
	if len(send) < set.size() {
		sortItems(send) // sent item by item; all of it goes part by part
	}
	return send, dedupSorted(removed)
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// deltaAgainst lists what differs between sent (what the proxy holds) and
// cur among the watched names, plus the names in always and those the request
// newly subscribed. all: send every watched resource (the proxy's state is
// unknown). When the proxy watches everything of both sets, the answer is the
// parts' shared diffs, computed once for every proxy.
func deltaAgainst(ts *typeState, sent, cur *resourceSet, all bool, always map[string]bool, subscribed []string) (send []*item, removed []string) {
	ds := ts.dstate
	// Items can be named twice only through subscribed and always; the map
	// that catches that is made only then.
	var included map[string]bool
	if len(subscribed) > 0 || len(always) > 0 {
		included = map[string]bool{}
	}
	add := func(it *item) {
		if included == nil {
			send = append(send, it)
			return
		}
		if !included[it.name] {
			included[it.name] = true
			send = append(send, it)
		}
	}
	watchesAll := ds.wildcard || ds.names == cur.allNames()
	switch {
	case !all && sent != nil && watchesAll && aligned(sent, cur):
		for i, p := range cur.parts {
			for _, it := range p.changedSince(sent.parts[i]) {
				add(it)
			}
			removed = append(removed, p.removedSince(sent.parts[i])...)
		}
	case ds.wildcard:
		for _, it := range cur.all() {
			var prev *item
			if sent != nil {
				prev = sent.lookup(it.name)
			}
			if all || prev == nil || prev.hash != it.hash {
				add(it)
			}
		}
		if sent != nil {
			for _, it := range sent.all() {
				if cur.lookup(it.name) == nil {
					removed = append(removed, it.name)
				}
			}
		}
	default:
		for _, n := range ts.watch.delta.sub.names {
			it := cur.lookup(n)
			var prev *item
			if sent != nil {
				prev = sent.lookup(n)
			}
			switch {
			case it == nil && prev != nil:
				removed = append(removed, n)
			case it == nil:
			case all || prev == nil || prev.hash != it.hash:
				add(it)
			}
		}
	}
	for _, n := range subscribed {
		if it := cur.lookup(n); it != nil {
			add(it)
		} else if n != "*" {
			removed = append(removed, n)
		}
	}
	for n := range always {
		if it := cur.lookup(n); it != nil && ts.deltaWatched(n) {
			add(it)
		}
	}
	sortItems(send)
	return send, dedupSorted(removed)
}

func sortItems(items []*item) {
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
}

func dedupSorted(names []string) []string {
	if len(names) < 2 {
		return names
	}
	sort.Strings(names)
	out := names[:1]
	for _, n := range names[1:] {
		if n != out[len(out)-1] {
			out = append(out, n)
		}
	}
	return out
}

// deltaResponseWritten is told (by the stream's handler) that a delta
// response went out with nonce: the oldest unwritten response of its type.
func (c *proxyCache) deltaResponseWritten(cn *conn, resp *discovery.DeltaDiscoveryResponse) {
	t, known := typeOf(resp.GetTypeUrl())
	if !known {
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	ts := &cn.types[t]
	if ts.dstate == nil {
		return
	}
	for i := range ts.dstate.responses {
		if ts.dstate.responses[i].nonce == "" {
			ts.dstate.responses[i].nonce = resp.GetNonce()
			ts.writtenVersion = ts.dstate.responses[i].version
			return
		}
	}
}

// deltaResource is the item as a delta Resource: its name, its version (the
// content hash) and, through the codec, its shared marshalled bytes. It is
// built once and shared by every delta response that carries the item:
// nothing downstream writes to it (go-control-plane sets the nonce on the
// response, the codec only reads).
func (it *item) deltaResource() *discovery.Resource {
	it.deltaResOnce.Do(func() {
		it.deltaRes = &discovery.Resource{Name: it.name, Version: it.version(), Resource: &anypb.Any{TypeUrl: preEncodedTypeURL, Value: it.deltaEncoded()}}
	})
	return it.deltaRes
}
