package xds

import (
	"bytes"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestCodecMatchesProtoMarshal(t *testing.T) {
	var resources []*anypb.Any
	for _, name := range []string{"a", "outbound|80||b.default.svc.cluster.local", ""} {
		a, err := anypb.New(&clusterv3.Cluster{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, a)
	}
	resources = append(resources, &anypb.Any{}) // empty Any: zero-length value
	cases := []*discovery.DiscoveryResponse{
		{},
		{VersionInfo: "v1", TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster", Nonce: "7"},
		{VersionInfo: "0123456789abcdef", Resources: resources, TypeUrl: "t", Nonce: "12", Canary: true},
		{Resources: resources[:1], ControlPlane: &corev3.ControlPlane{Identifier: "mizzen"}}, // fallback path
	}
	for i, c := range cases {
		got, err := Codec{}.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("case %d: codec bytes differ from proto.Marshal", i)
		}
		var back discovery.DiscoveryResponse
		if err := (Codec{}).Unmarshal(got, &back); err != nil || !proto.Equal(&back, c) {
			t.Errorf("case %d: round trip: %v", i, err)
		}
	}
}

func TestCodecSharesResourceBytes(t *testing.T) {
	a, _ := anypb.New(&clusterv3.Cluster{Name: "big", AltStatName: string(make([]byte, 4096))})
	out, err := Codec{}.Marshal(&discovery.DiscoveryResponse{Resources: []*anypb.Any{a}, Nonce: "1"})
	if err != nil {
		t.Fatal(err)
	}
	shared := false
	for _, b := range out {
		d := b.ReadOnlyData()
		if len(d) == len(a.Value) && &d[0] == &a.Value[0] {
			shared = true
		}
	}
	if !shared {
		t.Error("resource bytes were copied, not shared")
	}
}

func TestCodecSplicesPreEncodedParts(t *testing.T) {
	var msgs []*clusterv3.Cluster
	for _, n := range []string{"b", "a", "c"} {
		msgs = append(msgs, &clusterv3.Cluster{Name: n})
	}
	p, err := newPart(msgs, clusterName)
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := anypb.New(&clusterv3.Cluster{Name: "inbound|80||"})
	viaMarker := &discovery.DiscoveryResponse{VersionInfo: "v", TypeUrl: "t", Nonce: "3",
		Resources: []*anypb.Any{{TypeUrl: preEncodedTypeURL, Value: p.encodedAll()}, extra}}
	plain := &discovery.DiscoveryResponse{VersionInfo: "v", TypeUrl: "t", Nonce: "3", Resources: []*anypb.Any{p.items[0].any, p.items[1].any, p.items[2].any, extra}}
	got, err := Codec{}.Marshal(viaMarker)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(plain)
	if !bytes.Equal(got.Materialize(), want) {
		t.Error("pre-encoded part does not splice into the same bytes as its items")
	}
}

// A delta response with pre-encoded items decodes to exactly what the items
// are: name, version and resource, plus removals, nonce and type.
func TestCodecDeltaResponse(t *testing.T) {
	p, err := newPart([]*clusterv3.Cluster{{Name: "a"}, {Name: "outbound|80||b.default.svc.cluster.local"}}, clusterName)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := anypb.New(&clusterv3.Cluster{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	resp := &discovery.DeltaDiscoveryResponse{
		SystemVersionInfo: "v9", TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster", Nonce: "3",
		Resources:        []*discovery.Resource{p.items[0].deltaResource(), {Name: "c", Version: "1", Resource: plain}, p.items[1].deltaResource()},
		RemovedResources: []string{"gone", "also-gone"},
	}
	bufs, err := Codec{}.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got discovery.DeltaDiscoveryResponse
	if err := proto.Unmarshal(bufs.Materialize(), &got); err != nil {
		t.Fatal(err)
	}
	want := &discovery.DeltaDiscoveryResponse{
		SystemVersionInfo: "v9", TypeUrl: resp.TypeUrl, Nonce: "3", RemovedResources: resp.RemovedResources,
		Resources: []*discovery.Resource{
			{Name: "a", Version: p.items[0].version(), Resource: p.items[0].any},
			{Name: "c", Version: "1", Resource: plain},
			{Name: "outbound|80||b.default.svc.cluster.local", Version: p.items[1].version(), Resource: p.items[1].any},
		},
	}
	if !proto.Equal(&got, want) {
		t.Errorf("decoded:\n%v\nwant:\n%v", &got, want)
	}
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bufs.Materialize(), wire) {
		t.Error("the codec's bytes differ from proto.Marshal's")
	}
}

// The codec's delta request decoding (names interned) reads what
// proto.Unmarshal reads.
func TestUnmarshalDeltaRequestMatchesProto(t *testing.T) {
	want := &discovery.DeltaDiscoveryRequest{
		Node:                     &corev3.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"},
		TypeUrl:                  resourcev3.EndpointType,
		ResourceNamesSubscribe:   []string{"outbound|80||a.ns.svc.cluster.local", "*", "outbound|80||b.ns.svc.cluster.local"},
		ResourceNamesUnsubscribe: []string{"outbound|80||c.ns.svc.cluster.local"},
		InitialResourceVersions:  map[string]string{"outbound|80||a.ns.svc.cluster.local": "1f"},
		ResponseNonce:            "7",
		ErrorDetail:              &rpcstatus.Status{Code: 3, Message: "bad"},
	}
	b, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := &discovery.DeltaDiscoveryRequest{}
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	bad := protowire.AppendTag(nil, deltaReqFieldSubscribe, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff, 0xfe})
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(bad)}, &discovery.DeltaDiscoveryRequest{}); err == nil {
		t.Error("a name that is not UTF-8 was accepted")
	}
}
