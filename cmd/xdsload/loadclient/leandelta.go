package loadclient

import (
	"errors"
	"fmt"
	"sync"
	"unique"
	"unsafe"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A delta proxy reads of each response only what Envoy's protocol state
// needs: names, versions, the nonce, removals, and what clusters and listeners
// subscribe to. Decoding the whole DeltaDiscoveryResponse copied every
// resource (a 540 KB route table per proxy per VirtualService change on the
// 1,000-service mesh) and allocated a message per resource; on a 2-core
// machine that CPU was taken from the control plane being measured. Envoy
// does decode everything, but in a real cluster it does so on its own node.

// leanDelta is a DeltaDiscoveryResponse as a delta proxy uses it.
type leanDelta struct {
	sysVer, typeURL, nonce string
	resources              []leanResource
	removed                []string
	size                   int // bytes on the wire
}

// leanResource is one resource of a leanDelta. Its name and version are
// interned as they are read (unique.Make copies a string it keeps): a string
// per name and version of 1,000 proxies × 2,000 resources was the largest
// part of the load client's warm-up. Of a cluster, eds/edsName say whether it
// is an EDS cluster and its EDS service name; of a listener, rdsNames are its
// HTTP connection managers' route names; err is a decode error of either (the
// resource is still held).
type leanResource struct {
	name, version handle
	hasResource   bool
	eds           bool
	edsName       handle
	rdsNames      []string
	err           error
}

// Field numbers of DeltaDiscoveryResponse, Resource and Any.
const (
	respSystemVersion = 1
	respResources     = 2
	respTypeURL       = 4
	respNonce         = 5
	respRemoved       = 6
	resVersion        = 1
	resResource       = 2
	resName           = 3
	anyTypeURL        = 1
	anyValue          = 2
)

// parseDelta reads a DeltaDiscoveryResponse's wire form b, its resources
// into buf's array if it has room. Nothing of b is kept: gRPC reuses the
// buffer.
func parseDelta(b []byte, buf []leanResource) (*leanDelta, error) {
	r := &leanDelta{size: len(b)}
	n := 0
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case respSystemVersion:
			r.sysVer = string(v)
		case respResources:
			n++
		case respTypeURL:
			r.typeURL = string(v)
		case respNonce:
			r.nonce = string(v)
		case respRemoved:
			r.removed = append(r.removed, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delta response: %w", err)
	}
	// The type URL may follow the resources on the wire: read them after.
	if cap(buf) >= n {
		r.resources = buf[:0]
	} else {
		r.resources = make([]leanResource, 0, n)
	}
	err = eachField(b, func(num protowire.Number, v []byte) error {
		if num != respResources {
			return nil
		}
		r.resources = append(r.resources, leanResource{})
		if err := r.resources[len(r.resources)-1].parse(v, r.typeURL); err != nil {
			return fmt.Errorf("resource %d: %w", len(r.resources)-1, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delta response: %w", err)
	}
	return r, nil
}

// intern is unique.Make of the bytes v without a string of its own.
func intern(v []byte) handle {
	return unique.Make(unsafe.String(unsafe.SliceData(v), len(v)))
}

func (lr *leanResource) parse(b []byte, typ string) error {
	var anyType, value []byte
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case resName:
			lr.name = intern(v)
		case resVersion:
			lr.version = intern(v)
		case resResource:
			lr.hasResource = true
			return eachField(v, func(num protowire.Number, v []byte) error {
				switch num {
				case anyTypeURL:
					anyType = v
				case anyValue:
					value = v
				}
				return nil
			})
		}
		return nil
	})
	if err != nil || !lr.hasResource {
		return err
	}
	if lr.name == (handle{}) {
		lr.name = noString
	}
	if lr.version == (handle{}) {
		lr.version = noString
	}
	switch typ {
	case TypeCDS:
		if string(anyType) == clusterTypeURL {
			if name, ok, err := scanEDSName(value); err == nil {
				if ok {
					lr.edsName, lr.eds = intern(name), true
				}
				return nil
			}
		}
		// Wrapped or malformed: the full decoder unwraps or says why.
		var name string
		name, lr.eds, lr.err = EDSNameOf(&anypb.Any{TypeUrl: string(anyType), Value: value})
		if lr.eds {
			lr.edsName = unique.Make(name)
		}
	case TypeLDS:
		lr.rdsNames, lr.err = RDSNamesOf(&anypb.Any{TypeUrl: string(anyType), Value: value})
	}
	return nil
}

// eachField calls f with each length-delimited field of message b; other
// fields are skipped.
func eachField(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// leanCodec is gRPC's proto codec, except that a *leanDelta is read with
// parseDelta.
type leanCodec struct {
	proto encoding.CodecV2
	// scratch holds the contiguous copy of a response split over several
	// frames; parseDelta keeps nothing of it, so it is reused without zeroing.
	scratch *sync.Pool
	// resources holds leanResource arrays given back by release: a first
	// response's array (1,000 resources, 70 KB) was fresh memory for every
	// proxy, and first touching it was a fifth of the client's warm-up CPU.
	resources *sync.Pool
	reqs      *bytesPool
}

func newLeanCodec() (leanCodec, error) {
	c := encoding.GetCodecV2("proto")
	if c == nil {
		return leanCodec{}, errors.New("loadclient: gRPC's proto codec is not registered")
	}
	return leanCodec{proto: c, scratch: &sync.Pool{New: func() any { return new([]byte) }},
		resources: &sync.Pool{New: func() any { return new([]leanResource) }}, reqs: &bytesPool{}}, nil
}

// release gives r's resources back once the response is handled; r must not
// be used after.
func (c leanCodec) release(r *leanDelta) {
	if cap(r.resources) < 64 {
		return
	}
	clear(r.resources)
	buf := r.resources[:0]
	r.resources = nil
	c.resources.Put(&buf)
}

func (c leanCodec) Name() string { return c.proto.Name() }

// Marshal sizes the request exactly: gRPC's pooled buffers come in tiers and
// are zeroed on every Get, so a 40 KB subscription took (and cleared) 1 MiB,
// which made the load client, not the control plane, the bottleneck of a
// fleet's warm-up.
// A large request (an EDS subscription of 1,000 names is 40 KB) goes in a
// buffer of reqs, which gRPC gives back once it is written: a fresh one per
// proxy was 40 MB of memory first touched in every warm-up.
func (c leanCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.proto.Marshal(v)
	}
	size := proto.Size(m)
	if size < pooledRequest {
		b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(make([]byte, 0, size), m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	bp := c.reqs.Get(size)
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend((*bp)[:0], m)
	if err != nil {
		c.reqs.Put(bp)
		return nil, err
	}
	*bp = b
	return mem.BufferSlice{mem.NewBuffer(bp, c.reqs)}, nil
}

// pooledRequest is the size from which a request's buffer is pooled.
const pooledRequest = 4 << 10

// bytesPool is a mem.BufferPool that does not zero what it hands out
// (Marshal overwrites all of it).
type bytesPool struct{ p sync.Pool }

func (bp *bytesPool) Get(n int) *[]byte {
	if b, _ := bp.p.Get().(*[]byte); b != nil && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

func (bp *bytesPool) Put(b *[]byte) { bp.p.Put(b) }

func (c leanCodec) Unmarshal(data mem.BufferSlice, v any) error {
	ld, ok := v.(*leanDelta)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		sp := c.scratch.Get().(*[]byte)
		defer c.scratch.Put(sp)
		if n := data.Len(); cap(*sp) < n {
			*sp = make([]byte, n)
		} else {
			*sp = (*sp)[:n]
		}
		data.CopyTo(*sp)
		b = *sp
	}
	bp := c.resources.Get().(*[]leanResource)
	r, err := parseDelta(b, *bp)
	if err != nil {
		return err
	}
	*ld = *r
	return nil
}

// leanDeltaStream is a delta ADS stream whose responses are leanDeltas.
type leanDeltaStream struct {
	cs interface {
		SendMsg(any) error
		RecvMsg(any) error
	}
}

func (s leanDeltaStream) Send(r *discovery.DeltaDiscoveryRequest) error { return s.cs.SendMsg(r) }

func (s leanDeltaStream) Recv() (*leanDelta, error) {
	r := &leanDelta{}
	if err := s.cs.RecvMsg(r); err != nil {
		return nil, err
	}
	return r, nil
}
