package xds

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// routeHoldTimeout bounds how long new listeners and routes wait for the new
// clusters they use to warm; a proxy that never asks for EDS still converges.
const routeHoldTimeout = 5 * time.Second

// proxyCache is mizzen's go-control-plane cache: it answers SotW watches from
// per-proxy resource sets whose items are shared, pre-marshalled Anys, tracks what
// each proxy ACKed or NACKed, and never re-sends a version the proxy rejected.
type proxyCache struct {
	log     *slog.Logger
	metrics *Metrics
	// builder gives a newly connected proxy its config from the current generation.
	builder func(*model.Proxy) (*generation, [numTypes]*resourceSet, *inboundParts, error)
	changes *changeLog

	mu    sync.Mutex
	conns map[string]*conn
}

// typeState is the per-type protocol state of one proxy.
type typeState struct {
	set   *resourceSet
	watch *watch

	sentVersion string
	// sentSet and sentNames describe the last response: the set it came from
	// (shared, so this costs a pointer per proxy, not a map) and which names
	// were asked for.
	sentSet       *resourceSet
	sentNames     nameSum
	sentAt        time.Time
	ackedVersion  string
	nackedVersion string
	nackMessage   string
	// nackedNames: the resources of the rejected response Envoy's message names.
	nackedNames []string
	acks, nacks int
	// queued: a response was handed to the stream and not yet written (see
	// responseWritten). A request of this type arriving meanwhile makes
	// go-control-plane drop it. writtenVersion is the version of the last
	// response written: the one a NACK rejects.
	queued         bool
	writtenVersion string
	// resendAll: the last response was dropped; answer the next request in full
	// even if it names the version that response carried.
	resendAll bool
	// dstate is the delta protocol state when the type is on a delta stream.
	dstate *deltaState
}

type watch struct {
	// delta is set for a watch of a delta stream (delta.go); the rest is SotW.
	delta *deltaWatch

	req *cache.Request
	sub cache.Subscription
	ch  chan cache.Response
	// names fingerprints req's resource names once per request, not per push.
	names nameSum
}

// conn is one connected proxy (keyed by node ID; an Envoy that reconnects keeps it).
type conn struct {
	mu          sync.Mutex
	id          string
	proxy       *model.Proxy
	streams     int
	types       [numTypes]typeState
	gen         *generation
	connectedAt time.Time
	// inbound: the sidecar's own inbound parts, reused while valid (generation.inbound).
	inbound *inboundParts

	// identity is the SPIFFE ID the proxy's stream proved ("" for none);
	// secret is the certificate issued for it.
	identity string
	secret   *secretState
	// creds: the gateway credentials of the current generation this proxy may
	// have (gateway_secrets.go); its SDS set is secret's parts plus creds.
	creds *part

	// holdRoutes: new clusters were sent; LDS/RDS wait until their endpoints
	// are ACKed (make before break), or until holdUntil.
	holdRoutes map[string]bool
	holdUntil  time.Time

	// rewarm: EDS clusters a CDS response redefined. Envoy warms a redefined
	// cluster afresh and waits for its ClusterLoadAssignment, but it asks for no
	// new name, so the next EDS response must carry these even though their
	// endpoints did not change; else the cluster stays warming (its traffic on the
	// old definition) until Envoy's initial fetch timeout, 15 s. istiod pushes
	// EDS with every CDS push for the same reason.
	rewarm map[string]bool

	// pending convergence measurement: change time and types still to be ACKed.
	changeAt      time.Time
	changePending typeVersions
	// outstanding: traced changes (see changes.go) this proxy has not fully ACKed.
	outstanding []*pendingChange
}

func newProxyCache(log *slog.Logger, m *Metrics, changes *changeLog) *proxyCache {
	return &proxyCache{log: log, metrics: m, conns: map[string]*conn{}, changes: changes}
}

func (c *proxyCache) conn(id string) *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[id]
}

func (c *proxyCache) snapshotConns() []*conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*conn, 0, len(c.conns))
	for _, cn := range c.conns {
		out = append(out, cn)
	}
	return out
}

// streamOpened registers a stream's node; the first stream of a node builds
// its config. A proxy with a proven identity must claim the same namespace
// and service account in its node metadata, and a node ID already connected
// under another identity is refused: config and secrets are kept per node ID.
func (c *proxyCache) streamOpened(node *core.Node, ident identityCheck) (*conn, error) {
	id := node.GetId()
	meta := map[string]any{}
	if md := node.GetMetadata(); md != nil {
		meta = md.AsMap()
	}
	p, err := model.ParseProxy(id, meta)
	if err != nil {
		return nil, err
	}
	if l := node.GetLocality(); l != nil {
		p.Locality = model.Locality{Region: l.GetRegion(), Zone: l.GetZone(), SubZone: l.GetSubZone()}
	}
	spiffe, err := ident(p)
	if err != nil {
		return nil, err
	}
	p.Identity = spiffe
	c.mu.Lock()
	cn, ok := c.conns[id]
	if !ok {
		cn = &conn{id: id, proxy: p, connectedAt: time.Now(), identity: spiffe}
		c.conns[id] = cn
	} else if cn.identity != spiffe {
		c.mu.Unlock()
		return nil, &refusal{reason: "node_id_in_use", msg: "node ID " + id + " is connected with another identity"}
	}
	cn.streams++
	c.mu.Unlock()
	if !ok {
		gen, sets, inbound, err := c.builder(p)
		if err != nil {
			c.log.Error("building config for new proxy", "proxy", id, "err", err)
		}
		cn.mu.Lock()
		if err == nil && gen != nil && cn.gen == nil {
			cn.gen = gen
			cn.inbound = inbound
			for t := range sets {
				if typeIndex(t) == sdsType {
					cn.creds = credsOf(sets[t])
					cn.types[t].set = cn.sdsSet()
				} else if sets[t] != nil {
					cn.types[t].set = sets[t]
				}
			}
		}
		cn.mu.Unlock()
	}
	return cn, nil
}

func (c *proxyCache) streamClosed(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, ok := c.conns[id]
	if !ok {
		return
	}
	cn.streams--
	if cn.streams <= 0 {
		delete(c.conns, id)
		for t := range numTypes {
			c.metrics.accepted(t, id)
		}
		cn.mu.Lock()
		for _, pc := range cn.outstanding {
			c.changes.disconnected(pc.ch, id)
		}
		cn.outstanding = nil
		cn.mu.Unlock()
	}
}

// CreateWatch is called for every request on a stream: initial requests, ACKs
// and NACKs. It answers at once when the proxy lacks the current version, and
// otherwise parks the watch until a push.
func (c *proxyCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	t, known := typeOf(req.GetTypeUrl())
	cn := c.conn(req.GetNode().GetId())
	if !known || cn == nil {
		// Types mizzen does not serve (yet) stay unanswered, as Envoy expects.
		return func() {}, nil
	}
	w := &watch{req: req, sub: sub, ch: ch}
	if !t.wildcard() {
		w.names = sumNames(req.GetResourceNames())
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.types[t].dstate = nil // SotW from now on (a proxy may switch on reconnect)
	c.recordRequest(cn, t, req)
	return c.parkWatch(cn, t, w), nil
}

// parkWatch makes w the proxy's watch of type t, answers it if the proxy lacks
// something, and returns its cancel function. Called with cn.mu held.
func (c *proxyCache) parkWatch(cn *conn, t typeIndex, w *watch) func() {
	c.park(cn, t, w)
	return c.unparkFunc(cn, t, w)
}

// park makes w the proxy's watch of type t and answers it if the proxy lacks
// something. Called with cn.mu held.
func (c *proxyCache) park(cn *conn, t typeIndex, w *watch) {
	cn.types[t].watch = w
	c.respondIfNeeded(cn, t)
	if t == cdsType {
		// Clusters this answer redefined need their endpoints again.
		c.respondIfNeeded(cn, edsType)
	}
	if t == edsType {
		// An EDS ACK may have warmed the clusters held routes were waiting for.
		c.maybeReleaseRoutes(cn)
	}
}

// unparkFunc returns what withdraws w, if it is still the proxy's watch of type t.
func (c *proxyCache) unparkFunc(cn *conn, t typeIndex, w *watch) func() {
	return func() {
		cn.mu.Lock()
		if cn.types[t].watch == w {
			cn.types[t].watch = nil
		}
		cn.mu.Unlock()
	}
}

// recordRequest does the ACK/NACK bookkeeping of one request.
func (c *proxyCache) recordRequest(cn *conn, t typeIndex, req *cache.Request) {
	ts := &cn.types[t]
	if ts.queued {
		// go-control-plane hands a request to the cache only after sending or
		// dropping the responses of its type still queued (processAllExcept in
		// ordered ADS): ours was dropped, the proxy never got it. Forget it.
		ts.queued = false
		ts.sentSet = nil
		ts.sentVersion = ""
		ts.resendAll = true
	}
	if req.GetResponseNonce() == "" {
		return
	}
	if req.GetErrorDetail() != nil {
		version := ts.writtenVersion
		if version == "" {
			version = ts.sentVersion
		}
		var sent []string
		if ts.sentSet != nil {
			for _, it := range ts.sentSet.all() {
				sent = append(sent, it.name)
			}
		}
		msg := req.GetErrorDetail().GetMessage()
		c.recordNACK(cn, t, version, msg, blamedNames(sent, msg))
		return
	}
	if req.GetVersionInfo() != ts.sentVersion {
		// Not a NACK, yet the proxy reports another version than the last one we
		// answered, with the current nonce: that answer never went out.
		// go-control-plane drops a queued response when a request of the same type
		// overtakes it (processAllExcept in ordered ADS, an abandoned channel
		// otherwise), so the proxy still has its old version. Forget what we think
		// we sent, so respondIfNeeded does not take the dropped items for what the
		// proxy holds and answers this request with the current version.
		ts.sentSet = nil
		ts.sentVersion = ""
		return
	}
	c.recordACK(cn, t, req.GetVersionInfo())
}

// recordNACK notes that the proxy rejected version of type t; names are the
// resources Envoy's message blames, when known. Called with cn.mu held.
func (c *proxyCache) recordNACK(cn *conn, t typeIndex, version, msg string, names []string) {
	ts := &cn.types[t]
	ts.nacks++
	ts.nackedVersion = version
	ts.nackMessage = msg
	ts.nackedNames = names
	c.metrics.rejects.WithLabelValues(typeLabels[t]).Inc()
	c.metrics.rejected(t, cn.id, msg)
	c.log.Warn("proxy rejected config (NACK); keeping its last good config",
		"proxy", cn.id, "type", typeLabels[t], "version", version, "resources", names, "error", msg)
	cn.changePending[t] = ""
	cn.outstanding = slices.DeleteFunc(cn.outstanding, func(pc *pendingChange) bool {
		if v := pc.pending[t]; v != "" && v == version {
			c.changes.nacked(pc.ch, cn.id, t, msg, names)
			return true
		}
		return false
	})
}

// recordACK notes that the proxy applied version of type t. Called with cn.mu held.
func (c *proxyCache) recordACK(cn *conn, t typeIndex, version string) {
	ts := &cn.types[t]
	ts.acks++
	ts.ackedVersion = version
	if ts.nackMessage != "" {
		c.metrics.accepted(t, cn.id)
	}
	ts.nackMessage = ""
	ts.nackedNames = nil
	if len(cn.outstanding) > 0 {
		now := time.Now()
		cn.outstanding = slices.DeleteFunc(cn.outstanding, func(pc *pendingChange) bool {
			if v := pc.pending[t]; v != "" && v == version {
				pc.pending[t] = ""
			}
			if pc.pending.empty() {
				c.changes.acked(pc.ch, cn.id, now)
				return true
			}
			return false
		})
	}
	if v := cn.changePending[t]; v != "" && v == version {
		cn.changePending[t] = ""
		if cn.changePending.empty() && !cn.changeAt.IsZero() {
			c.metrics.convergence.Observe(time.Since(cn.changeAt).Seconds())
			cn.changeAt = time.Time{}
		}
	}
}

// respondIfNeeded answers the parked watch of type t when the proxy lacks what
// the current set holds. Called with cn.mu held.
func (c *proxyCache) respondIfNeeded(cn *conn, t typeIndex) {
	ts := &cn.types[t]
	w, set := ts.watch, ts.set
	if w == nil || set == nil {
		return
	}
	if w.delta != nil {
		c.respondDelta(cn, t)
		return
	}
	if (t == ldsType || t == rdsType) && c.holding(cn) {
		return
	}
	names := w.req.GetResourceNames()
	newStream := w.req.GetResponseNonce() == ""
	sameNames := w.names == ts.sentNames
	var rewarm map[string]bool
	if t == edsType && len(cn.rewarm) > 0 {
		for _, n := range names {
			if cn.rewarm[n] {
				if rewarm == nil {
					rewarm = map[string]bool{}
				}
				rewarm[n] = true
			}
		}
	}
	if !newStream && sameNames && set.version == ts.nackedVersion {
		return // the proxy rejected exactly this; wait for a change
	}
	// EDS and RDS may carry only what changed (SotW lets Envoy keep the
	// resources a response leaves out), which is what makes one endpoint change
	// cost one ClusterLoadAssignment per proxy instead of all of them.
	incremental := !t.wildcard() && !newStream && sameNames && !ts.resendAll &&
		w.req.GetVersionInfo() == ts.sentVersion && ts.sentSet != nil
	var changed []*anypb.Any
	if incremental {
		changed = changedResources(ts.sentSet, set, names, w.names, rewarm)
	}
	if !newStream && sameNames && !ts.resendAll && len(rewarm) == 0 {
		if w.req.GetVersionInfo() == set.version {
			if ts.nackMessage != "" {
				// The proxy rejected a later version and kept this one, which
				// is current again (the bad object is gone): it is in sync,
				// though nothing is sent for it to ACK.
				c.recordACK(cn, t, set.version)
				ts.sentVersion, ts.sentSet = set.version, set
			}
			return
		}
		if incremental && len(changed) == 0 {
			return // nothing this proxy watches changed
		}
	}
	resources := changed
	if !incremental {
		resources = responseResources(t, set, names)
	}
	resp := &cache.PassthroughResponse{
		Request:           w.req,
		DiscoveryResponse: &discovery.DiscoveryResponse{VersionInfo: set.version, TypeUrl: typeURLs[t], Resources: resources},
	}
	select {
	case w.ch <- resp:
	default:
		// Cannot happen with go-control-plane's ADS channel (one slot per type);
		// dropping is safe in SotW: the next request gets the current version.
		c.log.Error("response channel full; dropping response", "proxy", cn.id, "type", typeLabels[t])
		return
	}
	if t == cdsType && (ts.sentSet != nil || ts.resendAll) {
		// Redefined EDS clusters (new ones come with a new EDS subscription,
		// answered in full anyway). After a dropped response we do not know
		// which of these the proxy holds as they are: all of them.
		for _, it := range redefinedClusters(ts.sentSet, set, ts.resendAll) {
			if cn.rewarm == nil {
				cn.rewarm = map[string]bool{}
			}
			cn.rewarm[it.name] = true
		}
	}
	if t == edsType {
		cn.rewarm = nil // sent, or no longer watched
	}
	ts.watch = nil
	ts.queued = true
	ts.resendAll = false
	ts.sentVersion = set.version
	ts.sentSet = set
	ts.sentNames = w.names
	ts.sentAt = time.Now()
	c.metrics.pushes.WithLabelValues(typeLabels[t]).Inc()
}

// responseWritten is told (by the stream's callback) that a response was
// written to the stream of proxy id.
func (c *proxyCache) responseWritten(id string, resp *discovery.DiscoveryResponse) {
	t, known := typeOf(resp.GetTypeUrl())
	cn := c.conn(id)
	if !known || cn == nil {
		return
	}
	cn.mu.Lock()
	cn.types[t].queued = false
	cn.types[t].writtenVersion = resp.GetVersionInfo()
	cn.mu.Unlock()
}

// responseResources lists what one response carries. A part sent whole goes as
// one pre-encoded pseudo-resource (its bytes are built once and shared by every
// proxy, see Codec); a part sent in pieces goes item by item.
func responseResources(t typeIndex, set *resourceSet, names []string) []*anypb.Any {
	var out []*anypb.Any
	whole := func(p *part) {
		if len(p.items) > 0 {
			out = append(out, &anypb.Any{TypeUrl: preEncodedTypeURL, Value: p.encodedAll()})
		}
	}
	if t.wildcard() {
		for _, p := range set.parts {
			whole(p)
		}
		return out
	}
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	for _, p := range set.parts {
		covered := 0
		for _, it := range p.items {
			if wanted[it.name] {
				covered++
			}
		}
		switch {
		case covered == 0:
		case covered == len(p.items):
			whole(p)
		default:
			for _, it := range p.items {
				if wanted[it.name] {
					out = append(out, it.any)
				}
			}
		}
	}
	return out
}

// nameSum fingerprints a set of resource names, independent of order, and is
// additive: the sum of a resource set's parts is the set's sum, so "does this
// proxy watch everything in the set" costs one comparison per push.
type nameSum struct {
	sum, xor uint64
	n        int
}

func (a nameSum) add(b nameSum) nameSum { return nameSum{a.sum + b.sum, a.xor ^ b.xor, a.n + b.n} }

func nameHash(n string) uint64 {
	v := uint64(14695981039346656037) // FNV-1a, without allocating
	for i := 0; i < len(n); i++ {
		v ^= uint64(n[i])
		v *= 1099511628211
	}
	return v
}

func sumNames(names []string) nameSum {
	var s nameSum
	for _, n := range names {
		h := nameHash(n)
		s = s.add(nameSum{h, h * 0x9E3779B97F4A7C15, 1})
	}
	return s
}

// aligned reports whether two sets are made of the same number of parts and
// hold the same names, so their parts can be compared pairwise.
func aligned(sent, cur *resourceSet) bool {
	return len(sent.parts) == len(cur.parts) && sent.allNames() == cur.allNames()
}

// changedResources lists the watched resources of cur that differ from sent,
// plus those named in always. When the proxy watches every resource of both
// sets, the answer is the parts' shared diffs (computed once for all proxies);
// otherwise it compares name by name.
func changedResources(sent, cur *resourceSet, names []string, watched nameSum, always map[string]bool) []*anypb.Any {
	var out []*anypb.Any
	included := func(string) bool { return false }
	if watched == cur.allNames() && aligned(sent, cur) {
		var diff map[string]bool
		for i, p := range cur.parts {
			for _, it := range p.changedSince(sent.parts[i]) {
				out = append(out, it.any)
				if len(always) > 0 {
					if diff == nil {
						diff = map[string]bool{}
					}
					diff[it.name] = true
				}
			}
		}
		included = func(n string) bool { return diff[n] }
	} else {
		sentNow := map[string]bool{}
		for _, n := range names {
			it := cur.lookup(n)
			if it == nil {
				continue
			}
			if prev := sent.lookup(n); prev == nil || prev.hash != it.hash {
				out = append(out, it.any)
				if len(always) > 0 {
					sentNow[n] = true
				}
			}
		}
		included = func(n string) bool { return sentNow[n] }
	}
	for n := range always {
		if it := cur.lookup(n); it != nil && !included(n) {
			out = append(out, it.any)
		}
	}
	return out
}

// redefinedClusters lists the EDS clusters of cur whose definition differs
// from sent (all of them when the proxy's state is unknown).
func redefinedClusters(sent, cur *resourceSet, all bool) []*item {
	var out []*item
	if !all && sent != nil && aligned(sent, cur) {
		for i, p := range cur.parts {
			for _, it := range p.changedSince(sent.parts[i]) {
				if it.warms && sent.parts[i].byName[it.name] != nil {
					out = append(out, it)
				}
			}
		}
		return out
	}
	for _, it := range cur.all() {
		if !it.warms {
			continue
		}
		var prev *item
		if sent != nil {
			prev = sent.lookup(it.name)
		}
		if all || (prev != nil && prev.hash != it.hash) {
			out = append(out, it)
		}
	}
	return out
}

func (c *proxyCache) holding(cn *conn) bool {
	if len(cn.holdRoutes) == 0 {
		return false
	}
	if time.Now().After(cn.holdUntil) {
		c.log.Warn("new clusters did not warm in time; sending routes anyway", "proxy", cn.id, "waiting_for", len(cn.holdRoutes))
		cn.holdRoutes = nil
		return false
	}
	return true
}

// maybeReleaseRoutes lets held listeners and routes go once the proxy ACKed
// endpoints for every new cluster. Called with cn.mu held.
func (c *proxyCache) maybeReleaseRoutes(cn *conn) {
	if len(cn.holdRoutes) == 0 {
		return
	}
	eds := &cn.types[edsType]
	if eds.ackedVersion != eds.sentVersion {
		return
	}
	if eds.watch == nil {
		return
	}
	asked := func(n string) bool { return eds.deltaWatched(n) }
	if eds.watch.delta == nil {
		names := map[string]bool{}
		for _, n := range eds.watch.req.GetResourceNames() {
			names[n] = true
		}
		asked = func(n string) bool { return names[n] }
	}
	for name := range cn.holdRoutes {
		if !asked(name) || eds.sentSet.lookup(name) == nil {
			return
		}
	}
	cn.holdRoutes = nil
	c.respondIfNeeded(cn, ldsType)
	c.respondIfNeeded(cn, rdsType)
}

// install gives a proxy new resource sets and answers its parked watches in
// CDS, EDS, LDS, RDS order. New clusters hold back listeners and routes until
// their endpoints are in (make before break), so a route never points at a
// cluster Envoy is still warming.
func (c *proxyCache) install(cn *conn, gen *generation, sets [numTypes]*resourceSet, inbound *inboundParts, ch *change) {
	changeAt := ch.At
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if old := cn.types[cdsType].set; old != nil && cn.types[cdsType].sentVersion != "" && old.version != sets[cdsType].version {
		added := map[string]bool{}
		for _, it := range sets[cdsType].all() {
			if old.lookup(it.name) == nil && it.warms {
				added[it.name] = true
			}
		}
		if len(added) > 0 {
			cn.holdRoutes = added
			cn.holdUntil = time.Now().Add(routeHoldTimeout)
			time.AfterFunc(routeHoldTimeout+10*time.Millisecond, func() {
				cn.mu.Lock()
				defer cn.mu.Unlock()
				if c.holding(cn) {
					return
				}
				c.respondIfNeeded(cn, ldsType)
				c.respondIfNeeded(cn, rdsType)
			})
		}
	}
	var pending typeVersions
	for t := range sets {
		if typeIndex(t) == sdsType {
			// The generation brings the gateway credentials; the proxy's own
			// certificate stays (renewSecret replaces it).
			cn.creds = credsOf(sets[t])
			sets[t] = cn.sdsSet()
		}
		if sets[t] == nil {
			continue
		}
		if cn.types[t].set == nil || cn.types[t].set.version != sets[t].version {
			pending[typeIndex(t)] = sets[t].version
		}
		cn.types[t].set = sets[t]
	}
	cn.gen = gen
	cn.inbound = inbound
	if !pending.empty() {
		if cn.changeAt.IsZero() {
			cn.changeAt = changeAt
		}
		for t, v := range pending {
			if v != "" {
				cn.changePending[t] = v
			}
		}
		// An older change still waiting on a type now waits on the newer
		// version: the proxy will only ever ACK that one, and it includes both.
		for _, pc := range cn.outstanding {
			for t, v := range pending {
				if v != "" && pc.pending[t] != "" {
					pc.pending[t] = v
				}
			}
		}
		cn.outstanding = append(cn.outstanding, &pendingChange{ch: ch, pending: pending})
		c.changes.touched(ch, cn.id, pending)
	}
	for t := cdsType; t < numTypes; t++ {
		c.respondIfNeeded(cn, t)
	}
}

// credsOf is the credentials part of a generation's SDS set (nil for none).
func credsOf(s *resourceSet) *part {
	if s == nil || len(s.parts) == 0 {
		return nil
	}
	return s.parts[0]
}

// Fetch: REST polling is not served.
func (c *proxyCache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("REST xDS is not supported")
}
