package xds

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serveDelta is mizzen's own delta ADS stream handler; state of the world
// stays go-control-plane's. go-control-plane's delta server kept, per stream
// and type, a map of every subscribed name and a map of returned versions,
// and handed each request (ACKs included) through a channel to a second
// goroutine that cancelled and re-created the type's watch. An Envoy
// subscribes to each EDS cluster by name, so in a large mesh those maps were
// half of mizzen's live heap per proxy, and the hand-offs a good part of the
// CPU of an endpoint change. Here a subscription is a sorted slice of shared
// (interned, see Codec) names, a request is handled on the goroutine that
// received it, and only the handler goroutine sends.

// deltaStream is the state of one delta stream that its receiving goroutine
// owns; mu orders requests against the stream's close.
type deltaStream struct {
	key    int64
	mu     sync.Mutex
	closed bool
	node   *core.Node
	subs   [numTypes]*deltaSub
	cancel [numTypes]func()
	// watches: one per type for the stream's life, re-parked by each
	// request (an ACK costs no allocation).
	watches [numTypes]*watch
	// cn is the stream's proxy once its first request registered it; it
	// stays in the cache while the stream lives.
	cn atomic.Pointer[conn]
}

// deltaOutCap is the room of a stream's response channel: each type has at
// most one response in flight (respondDelta parks until the ACK), twice over.
const deltaOutCap = 2 * int(numTypes)

// serveDelta serves one delta stream until it ends, the server stops (ctx) or
// its identity is revoked (revoked closes; nil for a stream that proved none):
// then nothing more is sent. streamCtx is the stream's context (with its guard).
func (s *Server) serveDelta(ctx, streamCtx context.Context, str discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, revoked <-chan struct{}) error {
	ds := &deltaStream{key: deltaKey(s.deltaStreams.Add(1))}
	s.streamOpen(streamCtx, ds.key)
	out := make(chan *discovery.DeltaDiscoveryResponse, deltaOutCap)
	// Every way the stream can end, but revocation, closes one channel: the
	// loop below waits on it and out only. A select over the five sources
	// cost the handler more than its Send did, once per response, at every
	// proxy of a push.
	stop := make(chan struct{})
	var (
		stopOnce sync.Once
		recvErr  error // set before stop closes
	)
	halt := func(err error) { stopOnce.Do(func() { recvErr = err; close(stop) }) }
	defer context.AfterFunc(ctx, func() { halt(nil) })()
	defer context.AfterFunc(str.Context(), func() { halt(nil) })()
	go func() {
		for {
			req, err := str.Recv()
			if err == nil {
				err = s.deltaRequest(ds, req, out)
			}
			if err != nil {
				halt(err)
				return
			}
		}
	}()
	defer func() {
		ds.mu.Lock()
		ds.closed = true
		for _, cancel := range ds.cancel {
			if cancel != nil {
				cancel()
			}
		}
		node := ds.node
		ds.mu.Unlock()
		s.streamClosed(ds.key, node)
	}()
	var nonce int64
	for {
		select {
		case <-stop:
			err := recvErr
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case <-revoked:
			return errRevoked
		case resp := <-out:
			select {
			case <-revoked:
				return errRevoked // revoked meanwhile: send nothing more
			default:
			}
			nonce++
			resp.Nonce = strconv.FormatInt(nonce, 10)
			if cn := ds.cn.Load(); cn != nil {
				s.cache.deltaResponseWritten(cn, resp)
			}
			if err := str.Send(resp); err != nil {
				return err
			}
		}
	}
}

// deltaRequest handles one request of a delta stream, on its receiving goroutine.
func (s *Server) deltaRequest(ds *deltaStream, req *discovery.DeltaDiscoveryRequest, out chan<- *discovery.DeltaDiscoveryResponse) error {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.closed {
		return context.Canceled
	}
	if ds.node == nil {
		ds.node = req.GetNode()
	}
	cn := ds.cn.Load()
	if cn == nil {
		if err := s.streamRequest(ds.key, ds.node); err != nil {
			return err
		}
		if cn = s.cache.conn(ds.node.GetId()); cn == nil {
			// Registered just above and kept while the stream lives: a bug if seen.
			return status.Errorf(codes.Internal, "proxy %q is not registered after its first request", ds.node.GetId())
		}
		ds.cn.Store(cn)
	}
	if req.GetTypeUrl() == "" {
		return status.Errorf(codes.InvalidArgument, "type URL is required for ADS")
	}
	t, known := typeOf(req.GetTypeUrl())
	if !known {
		return nil // types mizzen does not serve stay unanswered, as Envoy expects
	}
	sub, first := ds.subs[t], ds.subs[t] == nil
	if first {
		sub = newDeltaSub(len(req.GetResourceNamesSubscribe()) == 0)
		ds.subs[t] = sub
		w := &watch{delta: &deltaWatch{sub: sub, out: out}}
		ds.watches[t], ds.cancel[t] = w, s.cache.unparkFunc(cn, t, w)
	} else {
		ds.cancel[t]()
	}
	sub.update(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
	s.cache.deltaWatch(cn, t, req, first, ds.watches[t])
	return nil
}

// deltaSub is what one delta stream subscribes to of one type, with the
// protocol's rules: a first request naming nothing is a (legacy) wildcard
// subscription until a request names something; "*" subscribes to
// everything explicitly. Names are kept sorted, once each.
type deltaSub struct {
	legacy   bool // legacy wildcard still possible
	wildcard bool
	names    []string
}

// explicitWildcard is the name that subscribes to every resource of a type.
const explicitWildcard = "*"

func newDeltaSub(emptyFirst bool) *deltaSub {
	return &deltaSub{legacy: true, wildcard: emptyFirst}
}

func (d *deltaSub) update(subscribe, unsubscribe []string) {
	if d.legacy {
		if len(subscribe) == 0 {
			return
		}
		d.legacy = false
	}
	if len(d.names) == 0 && strictlySorted(subscribe) {
		// A first subscription in order (a proxy's EDS clusters, a
		// thousand of them): the request's own list, which nothing writes,
		// rather than a copy sorted again.
		d.names = slices.Clip(subscribe)
		subscribe = nil
	}
	var added []string
	for _, n := range subscribe {
		if n == explicitWildcard {
			d.wildcard = true
			continue
		}
		if !d.has(n) {
			if added == nil {
				added = make([]string, 0, len(d.names)+len(subscribe))
				added = append(added, d.names...)
			}
			added = append(added, n)
		}
	}
	if added != nil {
		// One exact-size slice: it lives as long as the stream.
		slices.Sort(added)
		d.names = slices.Clip(slices.Compact(added))
	}

	var kept []string
	for _, n := range unsubscribe {
		if n == explicitWildcard {
			d.wildcard = false
			continue
		}
		if !d.has(n) {
			continue
		}
		if kept == nil {
			kept = slices.Clone(d.names) // names may be shared (shareNames): never written in place
		}
		if i, ok := slices.BinarySearch(kept, n); ok {
			kept = slices.Delete(kept, i, i+1)
		}
	}
	if kept != nil {
		d.names = slices.Clip(kept)
	}
}

// strictlySorted reports whether names ascend without repeats and hold no
// explicit wildcard.
func strictlySorted(names []string) bool {
	for i, n := range names {
		if n == explicitWildcard || (i > 0 && names[i-1] >= n) {
			return false
		}
	}
	return len(names) > 0
}

// shareNames makes names (sorted, equal to what d subscribes by name) d's
// list: an Envoy subscribes to exactly the EDS clusters it was sent, so most
// proxies' subscriptions equal a shared part's names and need no list of
// their own.
func (d *deltaSub) shareNames(names []string) { d.names = names }

// has reports whether name is subscribed by name (not through the wildcard).
func (d *deltaSub) has(name string) bool {
	_, ok := slices.BinarySearch(d.names, name)
	return ok
}

// CreateDeltaWatch completes go-control-plane's cache interface; adsServer
// serves delta streams itself, so its delta server never calls it.
func (c *proxyCache) CreateDeltaWatch(*cache.DeltaRequest, cache.Subscription, chan cache.DeltaResponse) (func(), error) {
	return nil, errors.New("delta streams are served by mizzen's own handler (deltaserver.go)")
}
