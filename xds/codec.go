package xds

import (
	"fmt"
	"unicode/utf8"
	"unique"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Codec is the gRPC codec of the xDS port. For a DiscoveryResponse it writes the
// wire format by reference: each resource's marshalled bytes, shared by every
// proxy that gets it, go to the transport as they are, with only a few bytes of
// framing built per send. Without it gRPC would marshal a fresh copy of every
// response per proxy (megabytes each in a large mesh), so memory would grow with
// proxies × mesh size while responses wait for slow streams. Everything else is
// plain protobuf.
type Codec struct{}

// Name is "proto", so Envoy's application/grpc requests are accepted unchanged.
func (Codec) Name() string { return "proto" }

// Marshal encodes v; DiscoveryResponses share their resources' bytes.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*discovery.DiscoveryResponse); ok && sharedEncodable(r) {
		return encodeDiscoveryResponse(r), nil
	}
	if r, ok := v.(*discovery.DeltaDiscoveryResponse); ok && deltaSharedEncodable(r) {
		return encodeDeltaDiscoveryResponse(r)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("xds codec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal decodes requests; the data is copied out, so gRPC may free it.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("xds codec: cannot unmarshal into %T", v)
	}
	// proto.Unmarshal copies what it keeps, so a pooled buffer will do
	// (gRPC's own codec does the same); a request in one piece needs none.
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		b = buf.ReadOnlyData()
	}
	if r, ok := v.(*discovery.DeltaDiscoveryRequest); ok {
		return unmarshalDeltaRequest(b, r)
	}
	return proto.Unmarshal(b, m)
}

// eachField calls f with every field of the encoded DeltaDiscoveryRequest b:
// list is 0 for a resource_names_subscribe entry, 1 for an unsubscribe one
// (value: the name's bytes), -1 for any other field (field: its encoding).
func eachField(b []byte, f func(list int, field, value []byte) error) error {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		list, value := -1, []byte(nil)
		if (num == deltaReqFieldSubscribe || num == deltaReqFieldUnsubscribe) && typ == protowire.BytesType {
			list = int(num - deltaReqFieldSubscribe)
			value, _ = protowire.ConsumeBytes(b[off+n:])
		}
		if err := f(list, b[off:off+n+m], value); err != nil {
			return err
		}
		off += n + m
	}
	return nil
}

// DeltaDiscoveryRequest's name lists (discovery.proto).
const (
	deltaReqFieldSubscribe   = 3
	deltaReqFieldUnsubscribe = 4
)

// unmarshalDeltaRequest decodes a delta request whose resource names share one
// copy per distinct name across all proxies (unique.Make of a name already
// known allocates nothing). A delta stream keeps its subscribed names for its
// life, and an Envoy subscribes to each EDS cluster by name: a thousand names
// per proxy in a thousand-service mesh, which decoded the usual way would each
// be a fresh copy, garbage or kept. unique's handles are weak: a name nobody
// holds any more is freed. The other fields are decoded by proto.Unmarshal.
// (SotW requests are left alone: they repeat every name on every ACK, and
// each is dropped at the next one.)
func unmarshalDeltaRequest(b []byte, r *discovery.DeltaDiscoveryRequest) error {
	// Count first: the lists are kept (the subscription), so sized exactly.
	var counts [2]int
	if err := eachField(b, func(list int, _, _ []byte) error {
		if list >= 0 {
			counts[list]++
		}
		return nil
	}); err != nil {
		return err
	}
	var lists [2][]string
	for i, c := range counts {
		if c > 0 {
			lists[i] = make([]string, 0, c)
		}
	}
	var rest []byte
	if err := eachField(b, func(list int, field, value []byte) error {
		if list < 0 {
			rest = append(rest, field...)
			return nil
		}
		if !utf8.Valid(value) {
			return fmt.Errorf("xds codec: a resource name is not valid UTF-8")
		}
		lists[list] = append(lists[list], unique.Make(string(value)).Value())
		return nil
	}); err != nil {
		return err
	}
	if err := proto.Unmarshal(rest, r); err != nil {
		return err
	}
	r.ResourceNamesSubscribe, r.ResourceNamesUnsubscribe = lists[0], lists[1]
	if len(r.InitialResourceVersions) > 0 {
		m := make(map[string]string, len(r.InitialResourceVersions))
		for n, v := range r.InitialResourceVersions {
			m[unique.Make(n).Value()] = v
		}
		r.InitialResourceVersions = m
	}
	return nil
}

// sharedEncodable: the hand-written encoding covers the fields mizzen sets; any
// other field falls back to proto.Marshal, so the codec can never drop data.
func sharedEncodable(r *discovery.DiscoveryResponse) bool {
	return r.GetControlPlane() == nil && len(r.GetResourceErrors()) == 0 && len(r.ProtoReflect().GetUnknown()) == 0
}

// DiscoveryResponse field numbers (envoy/service/discovery/v3/discovery.proto).
const (
	fieldVersionInfo = 1
	fieldResources   = 2
	fieldCanary      = 3
	fieldTypeURL     = 4
	fieldNonce       = 5
	anyTypeURL       = 1
	anyValue         = 2
)

// preEncodedTypeURL marks a pseudo-resource whose value is already a run of
// encoded DiscoveryResponse.resources fields (a whole part, see part.encodedAll):
// the codec splices it in as it is. It exists only between mizzen's cache and
// this codec; a DiscoveryResponse holding one must never reach another encoder,
// which is why mizzen's ADS is served only by gRPC servers made with GRPCServerOptions.
const preEncodedTypeURL = "mizzen.internal/pre-encoded-resources"

// resourceFieldSize is the encoded size of a as one DiscoveryResponse.resources field.
func resourceFieldSize(a *anypb.Any) int {
	n := anyEncodedLen(a)
	return protowire.SizeTag(fieldResources) + protowire.SizeBytes(n)
}

func anyEncodedLen(a *anypb.Any) int {
	n := 0
	if tu := a.GetTypeUrl(); tu != "" {
		n += protowire.SizeTag(anyTypeURL) + protowire.SizeBytes(len(tu))
	}
	if v := a.GetValue(); len(v) > 0 {
		n += protowire.SizeTag(anyValue) + protowire.SizeBytes(len(v))
	}
	return n
}

// appendResourceField appends a as one DiscoveryResponse.resources field.
func appendResourceField(b []byte, a *anypb.Any) []byte { return appendAnyField(b, fieldResources, a) }

// appendAnyField appends a as field number field of the enclosing message.
func appendAnyField(b []byte, field protowire.Number, a *anypb.Any) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anyEncodedLen(a)))
	if tu := a.GetTypeUrl(); tu != "" {
		b = protowire.AppendTag(b, anyTypeURL, protowire.BytesType)
		b = protowire.AppendString(b, tu)
	}
	if v := a.GetValue(); len(v) > 0 {
		b = protowire.AppendTag(b, anyValue, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	return b
}

// encodeDiscoveryResponse emits the same bytes proto.Marshal would (fields in
// number order), as one small buffer of framing per resource plus the resource's
// shared value bytes.
func encodeDiscoveryResponse(r *discovery.DiscoveryResponse) mem.BufferSlice {
	// Framing for all resources goes into one allocation, sliced per resource.
	frame := make([]byte, 0, 32+len(r.GetVersionInfo())+len(r.GetResources())*(len(r.GetTypeUrl())+24))
	out := make(mem.BufferSlice, 0, 2*len(r.GetResources())+2)
	start := 0
	flush := func() {
		if len(frame) > start {
			out = append(out, mem.SliceBuffer(frame[start:len(frame):len(frame)]))
			start = len(frame)
		}
	}
	if v := r.GetVersionInfo(); v != "" {
		frame = protowire.AppendTag(frame, fieldVersionInfo, protowire.BytesType)
		frame = protowire.AppendString(frame, v)
	}
	for _, a := range r.GetResources() {
		if a.GetTypeUrl() == preEncodedTypeURL {
			flush()
			out = append(out, mem.SliceBuffer(a.GetValue()))
			continue
		}
		tu, val := a.GetTypeUrl(), a.GetValue()
		anyLen := anyEncodedLen(a)
		frame = protowire.AppendTag(frame, fieldResources, protowire.BytesType)
		frame = protowire.AppendVarint(frame, uint64(anyLen))
		if tu != "" {
			frame = protowire.AppendTag(frame, anyTypeURL, protowire.BytesType)
			frame = protowire.AppendString(frame, tu)
		}
		if len(val) > 0 {
			frame = protowire.AppendTag(frame, anyValue, protowire.BytesType)
			frame = protowire.AppendVarint(frame, uint64(len(val)))
			flush()
			out = append(out, mem.SliceBuffer(val))
		}
	}
	if r.GetCanary() {
		frame = protowire.AppendTag(frame, fieldCanary, protowire.VarintType)
		frame = protowire.AppendVarint(frame, 1)
	}
	if v := r.GetTypeUrl(); v != "" {
		frame = protowire.AppendTag(frame, fieldTypeURL, protowire.BytesType)
		frame = protowire.AppendString(frame, v)
	}
	if v := r.GetNonce(); v != "" {
		frame = protowire.AppendTag(frame, fieldNonce, protowire.BytesType)
		frame = protowire.AppendString(frame, v)
	}
	flush()
	return out
}

// DeltaDiscoveryResponse and Resource field numbers (discovery.proto).
const (
	deltaFieldSystemVersion = 1
	deltaFieldResources     = 2
	deltaFieldTypeURL       = 4
	deltaFieldNonce         = 5
	deltaFieldRemoved       = 6
	resourceFieldVersion    = 1
	resourceFieldResource   = 2
	resourceFieldName       = 3
)

// deltaSharedEncodable: the fields mizzen sets, and nothing else.
func deltaSharedEncodable(r *discovery.DeltaDiscoveryResponse) bool {
	return r.GetControlPlane() == nil && len(r.GetRemovedResourceNames()) == 0 && len(r.GetResourceErrors()) == 0 &&
		len(r.ProtoReflect().GetUnknown()) == 0
}

// appendDeltaResourceField appends one DeltaDiscoveryResponse.resources field:
// a Resource with version, resource and name (in field order, as proto.Marshal).
func appendDeltaResourceField(b []byte, name, version string, a *anypb.Any) []byte {
	n := 0
	if version != "" {
		n += protowire.SizeTag(resourceFieldVersion) + protowire.SizeBytes(len(version))
	}
	n += protowire.SizeTag(resourceFieldResource) + protowire.SizeBytes(anyEncodedLen(a))
	if name != "" {
		n += protowire.SizeTag(resourceFieldName) + protowire.SizeBytes(len(name))
	}
	b = protowire.AppendTag(b, deltaFieldResources, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if version != "" {
		b = protowire.AppendTag(b, resourceFieldVersion, protowire.BytesType)
		b = protowire.AppendString(b, version)
	}
	b = appendAnyField(b, resourceFieldResource, a)
	if name != "" {
		b = protowire.AppendTag(b, resourceFieldName, protowire.BytesType)
		b = protowire.AppendString(b, name)
	}
	return b
}

// encodeDeltaDiscoveryResponse emits what proto.Marshal would; a Resource
// whose resource is pre-encoded (item.deltaEncoded: the whole field, built
// once) is spliced in by reference, any other is marshalled here.
func encodeDeltaDiscoveryResponse(r *discovery.DeltaDiscoveryResponse) (mem.BufferSlice, error) {
	out := make(mem.BufferSlice, 0, len(r.GetResources())+2)
	var frame []byte
	flush := func() {
		if len(frame) > 0 {
			out = append(out, mem.SliceBuffer(frame))
			frame = nil
		}
	}
	if v := r.GetSystemVersionInfo(); v != "" {
		frame = protowire.AppendTag(frame, deltaFieldSystemVersion, protowire.BytesType)
		frame = protowire.AppendString(frame, v)
	}
	for _, res := range r.GetResources() {
		if res.GetResource().GetTypeUrl() == preEncodedTypeURL {
			flush()
			out = append(out, mem.SliceBuffer(res.GetResource().GetValue()))
			continue
		}
		b, err := proto.Marshal(res)
		if err != nil {
			return nil, err
		}
		frame = protowire.AppendTag(frame, deltaFieldResources, protowire.BytesType)
		frame = protowire.AppendBytes(frame, b)
	}
	if v := r.GetTypeUrl(); v != "" {
		frame = protowire.AppendTag(frame, deltaFieldTypeURL, protowire.BytesType)
		frame = protowire.AppendString(frame, v)
	}
	if v := r.GetNonce(); v != "" {
		frame = protowire.AppendTag(frame, deltaFieldNonce, protowire.BytesType)
		frame = protowire.AppendString(frame, v)
	}
	for _, n := range r.GetRemovedResources() {
		frame = protowire.AppendTag(frame, deltaFieldRemoved, protowire.BytesType)
		frame = protowire.AppendString(frame, n)
	}
	flush()
	return out, nil
}
