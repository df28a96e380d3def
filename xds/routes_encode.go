package xds

import (
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// routeEncoder marshals the sidecar route tables of one scope. The tables
// of a scope share most virtual hosts (translate.VirtualHostMemo), so each
// virtual host is marshalled once and a table is its pieces put together;
// tables that come out byte-equal (namespaces with no short names of their
// own) share one item, so its delta encoding is built once too. Not safe for
// concurrent use (scopeParts.mu guards it).
type routeEncoder struct {
	vhosts map[*routev3.VirtualHost][]byte
	items  map[itemKey]*item
}

type itemKey struct {
	name string
	hash uint64
}

func newRouteEncoder() *routeEncoder {
	return &routeEncoder{vhosts: map[*routev3.VirtualHost][]byte{}, items: map[itemKey]*item{}}
}

func (e *routeEncoder) part(rcs []*routev3.RouteConfiguration) (*part, error) {
	items := make([]*item, 0, len(rcs))
	for _, rc := range rcs {
		b, err := e.marshal(rc)
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", rc.GetName(), err)
		}
		it := itemOf(rc, rc.GetName(), b)
		k := itemKey{it.name, it.hash}
		if prev, ok := e.items[k]; ok {
			it = prev
		} else {
			e.items[k] = it
		}
		items = append(items, it)
	}
	return partOf(items)
}

// marshal is proto's deterministic encoding of rc, from its name (field 1),
// its virtual hosts (field 2, each marshalled once per encoder) and the
// fields after them, in field order as proto writes them.
func (e *routeEncoder) marshal(rc *routev3.RouteConfiguration) ([]byte, error) {
	opts := proto.MarshalOptions{Deterministic: true}
	vhs := make([][]byte, len(rc.GetVirtualHosts()))
	size := 0
	for i, vh := range rc.GetVirtualHosts() {
		b, ok := e.vhosts[vh]
		if !ok {
			var err error
			if b, err = opts.Marshal(vh); err != nil {
				return nil, err
			}
			e.vhosts[vh] = b
		}
		vhs[i] = b
		size += protowire.SizeTag(2) + protowire.SizeBytes(len(b))
	}
	// The fields after the virtual hosts: rc without its first two. rc is
	// the caller's own (its virtual hosts may be shared, rc is not).
	name, hosts := rc.Name, rc.VirtualHosts
	rc.Name, rc.VirtualHosts = "", nil
	tail, err := opts.Marshal(rc)
	rc.Name, rc.VirtualHosts = name, hosts
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, protowire.SizeTag(1)+protowire.SizeBytes(len(rc.GetName()))+size+len(tail))
	if rc.GetName() != "" {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, rc.GetName())
	}
	for _, b := range vhs {
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	return append(out, tail...), nil
}
