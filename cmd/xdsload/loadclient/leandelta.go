package loadclient

import (
	"errors"
	"fmt"
	"sync"

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

// leanResource is one resource of a leanDelta. Of a cluster, eds/edsName say
// whether it is an EDS cluster and its EDS service name; of a listener,
// rdsNames are its HTTP connection managers' route names; err is a decode
// error of either (the resource is still held).
type leanResource struct {
	name, version string
	hasResource   bool
	eds           bool
	edsName       string
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

// parseDelta reads a DeltaDiscoveryResponse's wire form b. Nothing of b is
// kept: gRPC reuses the buffer.
func parseDelta(b []byte) (*leanDelta, error) {
	r := &leanDelta{size: len(b)}
	var raw [][]byte
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case respSystemVersion:
			r.sysVer = string(v)
		case respResources:
			raw = append(raw, v)
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
	r.resources = make([]leanResource, len(raw))
	for i, rb := range raw {
		if err := r.resources[i].parse(rb, r.typeURL); err != nil {
			return nil, fmt.Errorf("delta response: resource %d: %w", i, err)
		}
	}
	return r, nil
}

func (lr *leanResource) parse(b []byte, typ string) error {
	var anyType string
	var value []byte
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case resName:
			lr.name = string(v)
		case resVersion:
			lr.version = string(v)
		case resResource:
			lr.hasResource = true
			return eachField(v, func(num protowire.Number, v []byte) error {
				switch num {
				case anyTypeURL:
					anyType = string(v)
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
	switch typ {
	case TypeCDS:
		if anyType == clusterTypeURL {
			if name, ok, err := scanEDSName(value); err == nil {
				lr.edsName, lr.eds = name, ok
				return nil
			}
		}
		// Wrapped or malformed: the full decoder unwraps or says why.
		lr.edsName, lr.eds, lr.err = EDSNameOf(&anypb.Any{TypeUrl: anyType, Value: value})
	case TypeLDS:
		lr.rdsNames, lr.err = RDSNamesOf(&anypb.Any{TypeUrl: anyType, Value: value})
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
}

func newLeanCodec() (leanCodec, error) {
	c := encoding.GetCodecV2("proto")
	if c == nil {
		return leanCodec{}, errors.New("loadclient: gRPC's proto codec is not registered")
	}
	return leanCodec{proto: c, scratch: &sync.Pool{New: func() any { return new([]byte) }}}, nil
}

func (c leanCodec) Name() string { return c.proto.Name() }

// Marshal sizes the request exactly: gRPC's pooled buffers come in tiers and
// are zeroed on every Get, so a 40 KB subscription took (and cleared) 1 MiB,
// which made the load client, not the control plane, the bottleneck of a
// fleet's warm-up.
func (c leanCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.proto.Marshal(v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

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
	r, err := parseDelta(b)
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
