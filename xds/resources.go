package xds

import (
	"encoding/binary"
	"fmt"
	"github.com/cespare/xxhash/v2"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The types mizzen serves, in the order a change must reach Envoy: clusters
// before the endpoints that fill them, both before the listeners and routes that
// point at them.
type typeIndex int

const (
	cdsType typeIndex = iota
	edsType
	ldsType
	rdsType
	// sdsType is the proxy's secrets, last: listeners and clusters name them,
	// Envoy asks for them once it sees those names.
	sdsType
	numTypes
)

var typeURLs = [numTypes]string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.SecretType}

// typeLabels are istiod's short names, used in metrics labels.
var typeLabels = [numTypes]string{"cds", "eds", "lds", "rds", "sds"}

func typeOf(url string) (typeIndex, bool) {
	for i, u := range typeURLs {
		if u == url {
			return typeIndex(i), true
		}
	}
	return 0, false
}

// wildcard types send every resource; the others send what the proxy asked for.
func (t typeIndex) wildcard() bool { return t == cdsType || t == ldsType }

// item is one marshalled resource. Items are immutable and shared between every
// proxy that gets the same resource: each is marshalled once per change.
type item struct {
	name string
	any  *anypb.Any
	hash uint64
	// warms: an EDS cluster, which Envoy keeps warming until its endpoints arrive.
	warms bool
	// ver is hash as the delta protocol's per-resource version.
	ver string

	// deltaBytes is the item as one encoded DeltaDiscoveryResponse.resources
	// field, built on first use and shared by every delta stream (see Codec).
	deltaOnce  sync.Once
	deltaBytes []byte

	deltaResOnce sync.Once
	deltaRes     *discovery.Resource
}

// version is the item's delta resource version: its content hash, so equal
// content has an equal version across generations, restarts and replicas.
func (it *item) version() string { return it.ver }

// deltaEncoded returns the item as an encoded DeltaDiscoveryResponse.resources field.
func (it *item) deltaEncoded() []byte {
	it.deltaOnce.Do(func() { it.deltaBytes = appendDeltaResourceField(nil, it.name, it.ver, it.any) })
	return it.deltaBytes
}

// part is a set of items built together (say, all outbound clusters of a
// snapshot) with a version that changes exactly when an item changes.
type part struct {
	items   []*item
	byName  map[string]*item
	version uint64
	// byHost groups an endpoints part's items by service (endpoints.go).
	byHost map[string][]*item

	// encoded is the wire form of every item as DiscoveryResponse.resources
	// entries, built on first use and then sent by reference to every proxy
	// that gets the whole part (see Codec).
	encodeOnce sync.Once
	encoded    []byte

	namesOnce sync.Once
	names     nameSum

	sortedOnce sync.Once
	sorted     []string

	// deltaAll is every item as one pseudo-resource of consecutive, encoded
	// DeltaDiscoveryResponse.resources fields: a response that carries the
	// whole part (a proxy's first) splices it in one piece (see Codec).
	deltaAllOnce sync.Once
	deltaAll     *discovery.Resource

	// The last diff computed, and the version of the part it was from: a
	// version, not the part, so a part does not keep its predecessor (and
	// that one its own) alive — each change's parts would chain.
	diffMu   sync.Mutex
	diffFrom uint64
	diffSet  bool
	diff     []*item
	removed  []string
}

// sortedNames lists the items' names, in order (items are sorted by name).
func (p *part) sortedNames() []string {
	p.sortedOnce.Do(func() {
		p.sorted = make([]string, len(p.items))
		for i, it := range p.items {
			p.sorted[i] = it.name
		}
	})
	return p.sorted
}

// allNames is the nameSum of every item's name.
func (p *part) allNames() nameSum {
	p.namesOnce.Do(func() {
		for _, it := range p.items {
			h := nameHash(it.name)
			p.names = p.names.add(nameSum{h, h * 0x9E3779B97F4A7C15, 1})
		}
	})
	return p.names
}

// changedSince lists the items that are new or different since prev. Every
// proxy moving from prev to p asks the same question, so the last answer is kept.
func (p *part) changedSince(prev *part) []*item {
	if p == prev {
		return nil
	}
	if prev == nil {
		return p.items
	}
	changed, _ := p.diffSince(prev)
	return changed
}

// removedSince lists the names of prev's items that p no longer has.
func (p *part) removedSince(prev *part) []string {
	if p == prev || prev == nil {
		return nil
	}
	_, removed := p.diffSince(prev)
	return removed
}

func (p *part) diffSince(prev *part) ([]*item, []string) {
	p.diffMu.Lock()
	defer p.diffMu.Unlock()
	if p.diffSet && p.diffFrom == prev.version {
		return p.diff, p.removed
	}
	var out []*item
	for _, it := range p.items {
		if old := prev.byName[it.name]; old == nil || old.hash != it.hash {
			out = append(out, it)
		}
	}
	var removed []string
	for _, it := range prev.items {
		if p.byName[it.name] == nil {
			removed = append(removed, it.name)
		}
	}
	p.diffFrom, p.diffSet, p.diff, p.removed = prev.version, true, out, removed
	return out, removed
}

// encodedAll returns the part's items as consecutive, ready-to-send
// DiscoveryResponse.resources fields.
func (p *part) encodedAll() []byte {
	p.encodeOnce.Do(func() {
		n := 0
		for _, it := range p.items {
			n += resourceFieldSize(it.any)
		}
		buf := make([]byte, 0, n)
		for _, it := range p.items {
			buf = appendResourceField(buf, it.any)
		}
		p.encoded = buf
	})
	return p.encoded
}

// deltaResourceAll returns the part as one pre-encoded delta pseudo-resource.
func (p *part) deltaResourceAll() *discovery.Resource {
	if len(p.items) == 1 {
		// A route table, say: the item's own encoding, not a copy of it.
		return p.items[0].deltaResource()
	}
	p.deltaAllOnce.Do(func() {
		n := 0
		for _, it := range p.items {
			n += len(it.deltaEncoded())
		}
		buf := make([]byte, 0, n)
		for _, it := range p.items {
			buf = append(buf, it.deltaEncoded()...)
		}
		p.deltaAll = &discovery.Resource{Resource: &anypb.Any{TypeUrl: preEncodedTypeURL, Value: buf}}
	})
	return p.deltaAll
}

// size is the number of items of every part.
func (s *resourceSet) size() int {
	n := 0
	for _, p := range s.parts {
		n += len(p.items)
	}
	return n
}

func newPart[M proto.Message](msgs []M, name func(M) string) (*part, error) {
	items := make([]*item, 0, len(msgs))
	for _, m := range msgs {
		it, err := newItem(m, name(m))
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return partOf(items)
}

// newItem marshals one resource.
func newItem(m proto.Message, name string) (*item, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", name, err)
	}
	it := itemOf(m, name, b)
	if c, ok := m.(*clusterv3.Cluster); ok && c.GetType() == clusterv3.Cluster_EDS {
		it.warms = true
	}
	return it, nil
}

// itemOf is the item of m named name, whose encoding is b.
func itemOf(m proto.Message, name string, b []byte) *item {
	// xxhash: route tables are hundreds of KB, hashed once per distinct
	// table and change (FNV-1a took 14 ms of a 1,000-workload change).
	it := &item{name: name, any: &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}, hash: xxhash.Sum64(b)}
	it.ver = strconv.FormatUint(it.hash, 16)
	return it
}

// partOf makes a part of items (some possibly shared with other parts: items
// are immutable).
func partOf(items []*item) (*part, error) {
	p := &part{items: items, byName: make(map[string]*item, len(items))}
	for _, it := range items {
		if _, dup := p.byName[it.name]; dup {
			return nil, fmt.Errorf("two resources named %q", it.name)
		}
		p.byName[it.name] = it
	}
	sort.Slice(p.items, func(i, j int) bool { return p.items[i].name < p.items[j].name })
	h := fnv.New64a()
	for _, it := range p.items {
		_, _ = h.Write([]byte(it.name))
		_ = binary.Write(h, binary.LittleEndian, it.hash)
	}
	p.version = h.Sum64()
	return p, nil
}

// resourceSet is what one proxy gets for one type: a few parts, some shared with
// other proxies, some its own.
type resourceSet struct {
	parts   []*part
	version string
}

func newResourceSet(parts ...*part) *resourceSet {
	// FNV-1a over the parts' versions, little-endian, as %016x: built for
	// every proxy and change, so without binary.Write's reflection and fmt.
	h := uint64(14695981039346656037)
	kept := make([]*part, 0, len(parts))
	for _, p := range parts {
		if p == nil {
			continue
		}
		kept = append(kept, p)
		for v, i := p.version, 0; i < 8; i, v = i+1, v>>8 {
			h = (h ^ (v & 0xff)) * 1099511628211
		}
	}
	var hex [16]byte
	for i := 15; i >= 0; i, h = i-1, h>>4 {
		hex[i] = "0123456789abcdef"[h&0xf]
	}
	return &resourceSet{parts: kept, version: string(hex[:])}
}

func (s *resourceSet) lookup(name string) *item {
	for _, p := range s.parts {
		if it, ok := p.byName[name]; ok {
			return it
		}
	}
	return nil
}

func (s *resourceSet) all() []*item {
	var out []*item
	for _, p := range s.parts {
		out = append(out, p.items...)
	}
	return out
}

// allNames is the nameSum of every resource in the set.
func (s *resourceSet) allNames() nameSum {
	var n nameSum
	for _, p := range s.parts {
		n = n.add(p.allNames())
	}
	return n
}

func (s *resourceSet) len() int {
	n := 0
	for _, p := range s.parts {
		n += len(p.items)
	}
	return n
}
