package loadclient

import (
	"context"
	"slices"
	"strings"
	"time"
	"unique"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
)

// Incremental (delta) xDS, as Envoy speaks it on ADS (DeltaAggregatedResources):
//
//   - the first request of each of CDS and LDS names nothing: a wildcard
//     subscription; the node goes on the stream's first request only;
//   - every response is applied (its resources replace those of the same name,
//     removed_resources are dropped) and ACKed by its nonce alone;
//   - the EDS names of the EDS clusters held and the RDS names of the HTTP
//     connection managers of the listeners held are subscribed with
//     resource_names_subscribe when a cluster or listener first names them and
//     unsubscribed when none does any more (one request per response, after its ACK);
//   - a re-opened stream tells what is held in initial_resource_versions and
//     re-subscribes the EDS/RDS names, as Envoy does after a reconnect.
//
// A proxy holds per resource only interned handles (name, version, the names
// it depends on): no copy of any name or version per proxy; the map costs about
// 80 bytes per resource (~160 MB for 1,000 proxies × 2,000 resources).

type handle = unique.Handle[string]

// removedVersion marks an EDS/RDS name that is subscribed and that the server
// said does not exist (removed_resources): answered, nothing held.
var removedVersion = unique.Make("\x00removed")

// noString is the handle of "": a resource without a name or version.
var noString = unique.Make("")

// depSep joins the RDS names of one listener into one interned handle.
const depSep = "\x00"

// heldEntry is one resource name of one type of one proxy.
type heldEntry struct {
	// ver is the version held; zero: subscribed but not answered yet (EDS/RDS).
	ver handle
	// dep: of a CDS resource the EDS service name of an EDS cluster, of an LDS
	// resource its RDS route names joined by depSep; zero: none.
	dep handle
	// refs (EDS/RDS): how many held clusters/listeners name it; subscribed while > 0.
	refs int32
	// mark (EDS/RDS) is the last response of the depending type (CDS/LDS)
	// that touched the name (deltaTypeState.marks).
	mark uint32
}

// touchedDeps are the EDS/RDS names one CDS/LDS response touched, each once
// (heldEntry.mark), with whether it was subscribed before. A map did that, but
// a first response touches 1,000 names, and that map was fresh memory per proxy.
type touchedDeps struct {
	names []handle
	was   []bool
}

// deltaTypeState is what a delta proxy holds of one type.
type deltaTypeState struct {
	held heldMap
	// pending counts subscribed EDS/RDS names without an answer yet.
	pending int
	// marks counts the responses of the depending type that touched names
	// of this one (heldEntry.mark).
	marks     uint32
	ackedOnce bool // a response of this type was ACKed on the current stream
	sysVer    string
	acks      int64
	firstAck  time.Time
	lastAck   time.Time
}

// Type indexes of the delta state, in the order of Types.
const (
	idxCDS = iota
	idxEDS
	idxLDS
	idxRDS
)

func typeIndex(typ string) int {
	switch typ {
	case TypeCDS:
		return idxCDS
	case TypeEDS:
		return idxEDS
	case TypeLDS:
		return idxLDS
	case TypeRDS:
		return idxRDS
	}
	return -1
}

func (p *proxy) dstate(i int) *deltaTypeState {
	ts := p.dtypes[i]
	if ts == nil {
		ts = &deltaTypeState{}
		p.dtypes[i] = ts
	}
	return ts
}

// deltaSender sends a delta proxy's requests.
type deltaSender interface {
	Send(*discovery.DeltaDiscoveryRequest) error
}

// deltaMethod is the full name of the delta ADS method.
const deltaMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

// deltaStream keeps one delta ADS stream until it fails or ctx is done.
func (p *proxy) deltaStream(ctx context.Context, conn grpc.ClientConnInterface) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var st leanDeltaStream
	if conn == nil {
		// The lean transport (h2stream.go): a connection per stream.
		h, err := dialH2Stream(sctx, p.c.cfg.Addr, p.c.codec, p.c.cfg.WindowSize, p.c.cfg.MaxRecvBytes)
		if err != nil {
			return err
		}
		defer h.Close()
		st.cs = h
	} else {
		cs, err := conn.NewStream(sctx, &grpc.StreamDesc{StreamName: "DeltaAggregatedResources", ServerStreams: true, ClientStreams: true},
			deltaMethod, grpc.ForceCodecV2(p.c.codec))
		if err != nil {
			return err
		}
		st.cs = cs
	}
	p.mu.Lock()
	if p.firstStreamAt.IsZero() {
		p.firstStreamAt = time.Now()
	}
	p.streams++
	reqs := p.deltaOpenRequestsLocked()
	p.mu.Unlock()
	reqs[0].Node = p.node // on the first message only, as Istio's bootstrap configures Envoy
	for _, r := range reqs {
		if err := st.Send(r); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		err = p.handleDelta(st, resp, time.Now())
		p.c.codec.release(resp)
		if err != nil {
			return err
		}
	}
}

// deltaOpenRequestsLocked are the first requests of a stream: CDS and LDS
// wildcard, with what is held as initial_resource_versions (nothing on the
// first stream), then, after a reconnect, the EDS and RDS names subscribed.
func (p *proxy) deltaOpenRequestsLocked() []*discovery.DeltaDiscoveryRequest {
	var reqs []*discovery.DeltaDiscoveryRequest
	for _, i := range []int{idxCDS, idxLDS, idxEDS, idxRDS} {
		ts := p.dstate(i)
		ts.ackedOnce = false
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: Types[i]}
		for n, e := range ts.held.all() {
			if i == idxEDS || i == idxRDS {
				req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n.Value())
			}
			if e.ver != (handle{}) && e.ver != removedVersion {
				if req.InitialResourceVersions == nil {
					req.InitialResourceVersions = map[string]string{}
				}
				req.InitialResourceVersions[n.Value()] = e.ver.Value()
			}
		}
		if (i == idxEDS || i == idxRDS) && len(req.ResourceNamesSubscribe) == 0 {
			continue // nothing to subscribe: an empty first request would be a wildcard
		}
		slices.Sort(req.ResourceNamesSubscribe)
		reqs = append(reqs, req)
	}
	return reqs
}

// handleDelta applies and ACKs one response, (un)subscribes the EDS/RDS names
// it makes the proxy need (or no longer need) and records the timings.
func (p *proxy) handleDelta(st deltaSender, resp *leanDelta, recvAt time.Time) error {
	c := p.c
	c.responses.Add(1)
	c.bytes.Add(int64(resp.size))
	typ := resp.typeURL
	ack := &discovery.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.nonce}
	ti := typeIndex(typ)
	if ti < 0 {
		// Not a type this proxy subscribes to: ACK it and hold nothing.
		c.acks.Add(1)
		return st.Send(ack)
	}

	// What each cluster/listener depends on (read by parseDelta).
	resources := resp.resources
	var deps []handle
	if ti == idxCDS || ti == idxLDS {
		deps = make([]handle, len(resources))
		for k := range resources {
			r := &resources[k]
			if r.err != nil {
				p.decodeError(typ, r.err)
			}
			switch {
			case ti == idxCDS && r.eds:
				deps[k] = r.edsName
			case ti == idxLDS && len(r.rdsNames) > 0:
				names := slices.Clone(r.rdsNames)
				slices.Sort(names)
				deps[k] = unique.Make(strings.Join(slices.Compact(names), depSep))
			}
		}
	}

	p.mu.Lock()
	ts := p.dstate(ti)
	newVersion := ts.acks == 0
	var dt *deltaTypeState
	var touched touchedDeps
	if ti == idxCDS || ti == idxLDS {
		dt = p.dstate(ti + 1) // EDS after CDS, RDS after LDS
		dt.marks++
	}
	// A first response names every resource at once: growing the maps to
	// that size one step at a time was a tenth of the client's warm-up CPU.
	if ts.held.len() == 0 && len(resources) > 8 {
		ts.held = makeHeldMap(len(resources))
		if dt != nil && dt.held.len() == 0 {
			dt.held = makeHeldMap(len(resources))
			touched.names = make([]handle, 0, len(resources))
			touched.was = make([]bool, 0, len(resources))
		}
	}
	for k := range resources {
		r := &resources[k]
		n, v := r.name, r.version
		e, ok := ts.held.get(n)
		if dt == nil && !ok {
			// An EDS/RDS resource this proxy did not subscribe to: Envoy ignores it.
			continue
		}
		// A resource without a version (istiod sets none) is new whenever it
		// is sent: Envoy applies it again.
		if !ok || e.ver != v || v == noString {
			newVersion = true
		}
		if ok && e.ver == (handle{}) {
			ts.pending--
		}
		e.ver = v
		if dt != nil && deps[k] != e.dep {
			refDeps(dt, e.dep, -1, &touched)
			refDeps(dt, deps[k], +1, &touched)
			e.dep = deps[k]
		}
		ts.held.set(n, e)
	}
	for _, name := range resp.removed {
		n := unique.Make(name)
		e, ok := ts.held.get(n)
		if !ok {
			continue
		}
		if dt != nil { // a wildcard type: the resource is gone
			newVersion = true
			refDeps(dt, e.dep, -1, &touched)
			ts.held.delete(n)
			continue
		}
		// A subscribed name that does not exist: answered, nothing held.
		if e.ver == (handle{}) {
			ts.pending--
		}
		if e.ver != removedVersion {
			newVersion = true
		}
		e.ver = removedVersion
		ts.held.set(n, e)
	}
	var sub *discovery.DeltaDiscoveryRequest
	if len(touched.names) > 0 {
		sub = finishDeps(dt, &touched, Types[ti+1])
	}
	p.mu.Unlock()

	if err := st.Send(ack); err != nil {
		return err
	}
	ackAt := time.Now()
	c.acks.Add(1)

	p.mu.Lock()
	ts.ackedOnce = true
	ts.acks++
	ts.sysVer = resp.sysVer
	if ts.firstAck.IsZero() {
		ts.firstAck = ackAt
	}
	ts.lastAck = ackAt
	if newVersion && len(p.history) < maxHistory {
		p.history = append(p.history, AckRecord{Type: typ, Version: resp.sysVer, At: ackAt})
	}
	becameFull := p.fullConfigAt.IsZero() && p.deltaFullLocked()
	if becameFull {
		p.fullConfigAt = ackAt
	}
	p.mu.Unlock()

	p.acked(becameFull, newVersion, recvAt, ackAt)
	if sub != nil {
		return st.Send(sub)
	}
	return nil
}

func (p *proxy) decodeError(typ string, err error) {
	p.c.decodeErrors.Add(1)
	p.c.cfg.Logger.Warn("decode error (ACKing anyway)", "proxy", p.id, "type", ShortType(typ), "err", err)
}

// refDeps adds d to the reference count of each name in dep (depSep-joined)
// in dt, creating unanswered entries for new names, and records in touched
// whether each name was subscribed before this response.
func refDeps(dt *deltaTypeState, dep handle, d int32, touched *touchedDeps) {
	if dep == (handle{}) {
		return
	}
	one := func(n handle) {
		e, ok := dt.held.get(n)
		if !ok || e.mark != dt.marks {
			touched.names = append(touched.names, n)
			touched.was = append(touched.was, ok && e.refs > 0)
			e.mark = dt.marks
		}
		if !ok {
			dt.pending++ // subscribed, not answered yet
		}
		e.refs += d
		dt.held.set(n, e)
	}
	s := dep.Value()
	if !strings.Contains(s, depSep) {
		one(dep)
		return
	}
	for _, n := range strings.Split(s, depSep) {
		one(unique.Make(n))
	}
}

// finishDeps drops the names no longer referenced and returns the request
// that (un)subscribes what changed, or nil.
func finishDeps(dt *deltaTypeState, touched *touchedDeps, typ string) *discovery.DeltaDiscoveryRequest {
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: typ}
	for i, n := range touched.names {
		was := touched.was[i]
		e, _ := dt.held.get(n)
		now := e.refs > 0
		if !now {
			if e.ver == (handle{}) {
				dt.pending--
			}
			dt.held.delete(n)
		}
		switch {
		case was && !now:
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n.Value())
		case !was && now:
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n.Value())
		}
	}
	if len(req.ResourceNamesSubscribe)+len(req.ResourceNamesUnsubscribe) == 0 {
		return nil
	}
	slices.Sort(req.ResourceNamesSubscribe)
	slices.Sort(req.ResourceNamesUnsubscribe)
	return req
}

// deltaFullLocked: CDS and LDS ACKed on this stream, and every subscribed
// EDS and RDS name answered.
func (p *proxy) deltaFullLocked() bool {
	cds, lds := p.dtypes[idxCDS], p.dtypes[idxLDS]
	eds, rds := p.dtypes[idxEDS], p.dtypes[idxRDS]
	return cds != nil && cds.ackedOnce && lds != nil && lds.ackedOnce &&
		(eds == nil || eds.pending == 0) && (rds == nil || rds.pending == 0)
}

// deltaStatusLocked fills st.Types from the delta state.
func (p *proxy) deltaStatusLocked(st *ProxyStatus) {
	for i, ts := range p.dtypes {
		if ts == nil {
			continue
		}
		ty := TypeStatus{Version: ts.sysVer, Acks: ts.acks, FirstAckAt: ts.firstAck, LastAckAt: ts.lastAck}
		for n, e := range ts.held.all() {
			if e.ver != (handle{}) && e.ver != removedVersion {
				ty.Held++
			}
			if i == idxEDS || i == idxRDS {
				ty.Names = append(ty.Names, n.Value())
			}
		}
		slices.Sort(ty.Names)
		st.Types[Types[i]] = ty
	}
}
