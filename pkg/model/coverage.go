package model

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Field coverage: for every field of the Istio API mizzen reads, whether it
// is applied, and if not, that it is reported. The table is keyed by message
// (its proto full name without "istio.") and field (its JSON name). Only
// fields reachable through applied ones are listed: once a field is not
// applied, setting it is reported as a whole and what is inside does not
// matter. coverage_test.go enumerates the istio.io/api descriptors and fails
// on a reachable field missing here, and on entries that are stale.
//
// Kinds mizzen does not implement at all are in unimplemented.go.

// FieldUse says what mizzen does with one API field.
type FieldUse struct {
	// Where is the file (from the repository root) that applies the field;
	// empty when it is not applied.
	Where string
	// Ignored is why the field is not applied; setting it is reported by
	// ReportIgnoredFields (a warning: the rest of the object applies).
	Ignored string
	// Checked names the file of a dedicated check that reports the field (or
	// the values of it mizzen cannot apply) with a message of its own: the
	// generic report leaves it alone.
	Checked string
	// Values, for an applied enum, are the values applied (every applied enum
	// lists them); any other value is reported, except CheckedValues, which a
	// check of its own reports.
	Values, CheckedValues []string
}

func applied(where string, values ...string) FieldUse { return FieldUse{Where: where, Values: values} }

// OutsideEnum, among CheckedValues, says the kind's validation reports a
// number that is no value of the enum.
const OutsideEnum = "(numbers outside the enum)"

// appliedExcept is an applied enum whose values checked are reported by
// the check in where.
func appliedExcept(where string, values []string, checked ...string) FieldUse {
	return FieldUse{Where: where, Values: values, CheckedValues: checked}
}
func ignored(why string) FieldUse   { return FieldUse{Ignored: why} }
func checked(where string) FieldUse { return FieldUse{Checked: where} }

// FieldCoverage is the table (a fresh copy: callers may not share it).
func FieldCoverage() map[string]map[string]FieldUse { return fieldCoverage() }

// CoverageRoots are the messages ReportIgnoredFields starts from: the spec
// of each implemented kind, and the mesh config.
var CoverageRoots = []string{
	"networking.v1alpha3.VirtualService", "networking.v1alpha3.DestinationRule", "networking.v1alpha3.Gateway",
	"networking.v1alpha3.ServiceEntry", "networking.v1alpha3.Sidecar", "security.v1beta1.PeerAuthentication",
	"security.v1beta1.AuthorizationPolicy", "security.v1beta1.RequestAuthentication", "mesh.v1alpha1.MeshConfig",
}

// coverageKey is a message's table key: its full name without "istio.".
func coverageKey(md protoreflect.MessageDescriptor) string {
	return strings.TrimPrefix(string(md.FullName()), "istio.")
}

// IgnoredField is one set field mizzen does not apply.
type IgnoredField struct {
	Path, Message string
}

// ReportIgnoredFields walks a spec (or the mesh config) and returns every
// field that is set but not applied, and every enum value of an applied field
// that is not, with its path under base ("spec", or "" for the mesh config).
// It runs on every object at every build, so it allocates only for what it
// reports: fields are visited in descriptor order (Has, not Range) and paths
// are formatted only when needed.
func ReportIgnoredFields(spec proto.Message, base string) []IgnoredField {
	if spec == nil {
		return nil
	}
	w := ignoredWalker{table: coverageTable()}
	if base != "" {
		w.path = append(w.path, base)
	}
	w.walk(spec.ProtoReflect())
	return w.out
}

type ignoredWalker struct {
	table map[string]map[string]FieldUse
	path  []string // segments: "spec", ".http", "[0]", …
	out   []IgnoredField
}

func (w *ignoredWalker) report(msg string) {
	p := strings.Join(w.path, "")
	w.out = append(w.out, IgnoredField{strings.TrimPrefix(p, "."), msg})
}

func (w *ignoredWalker) walk(m protoreflect.Message) {
	md := m.Descriptor()
	fields := w.table[coverageKey(md)]
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		w.path = append(w.path, "."+fd.JSONName())
		use, known := fields[fd.JSONName()]
		switch {
		case !known:
			w.report("mizzen does not know this field; it is not applied")
		case use.Checked != "":
		case use.Where == "":
			w.report("not applied by mizzen: " + use.Ignored)
		default:
			w.applied(fd, m.Get(fd), use)
		}
		w.path = w.path[:len(w.path)-1]
	}
}

// applied checks an applied field's enum values and walks into its messages.
func (w *ignoredWalker) applied(fd protoreflect.FieldDescriptor, v protoreflect.Value, use FieldUse) {
	checkEnum := len(use.Values) > 0 && fd.Enum() != nil
	sub := msgOf(fd)
	descend := sub != nil && !strings.HasPrefix(string(sub.FullName()), "google.protobuf.")
	if !checkEnum && !descend {
		return
	}
	visit := func(x protoreflect.Value) {
		if checkEnum {
			name := strconv.Itoa(int(x.Enum()))
			if ev := fd.Enum().Values().ByNumber(x.Enum()); ev != nil {
				name = string(ev.Name())
			} else if contains(use.CheckedValues, OutsideEnum) {
				return
			}
			if !contains(use.Values, name) && !contains(use.CheckedValues, name) {
				w.report(fmt.Sprintf("value %s is not applied by mizzen (it applies %s)", name, strings.Join(use.Values, ", ")))
			}
		}
		if descend {
			w.walk(x.Message())
		}
	}
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			w.path = append(w.path, "["+strconv.Itoa(i)+"]")
			visit(l.Get(i))
			w.path = w.path[:len(w.path)-1]
		}
	case fd.IsMap():
		// Keys of any type (portLevelMtls has uint32 ones), in a stable order.
		type entry struct {
			key string
			val protoreflect.Value
		}
		var es []entry
		v.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
			es = append(es, entry{k.String(), x})
			return true
		})
		sort.Slice(es, func(i, j int) bool { return es[i].key < es[j].key })
		for _, e := range es {
			w.path = append(w.path, "["+e.key+"]")
			visit(e.val)
			w.path = w.path[:len(w.path)-1]
		}
	default:
		visit(v)
	}
}

// msgOf is the message a field holds (a map's value), or nil.
func msgOf(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		return fd.MapValue().Message()
	}
	return fd.Message()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ignoredMemo keeps each object version's ignored fields across builds (in
// the inputs' HashCache), so a build walks only the objects that changed.
type ignoredMemo struct {
	c    *HashCache
	next map[hashKey][]IgnoredField
}

func (c *HashCache) beginIgnored() ignoredMemo {
	if c == nil {
		return ignoredMemo{}
	}
	c.mu.Lock()
	return ignoredMemo{c: c, next: make(map[hashKey][]IgnoredField, len(c.ignored))}
}

func (m ignoredMemo) end() {
	if m.c != nil {
		m.c.ignored = m.next
		m.c.mu.Unlock()
	}
}

func (m ignoredMemo) fields(kind string, meta metav1.ObjectMeta, spec proto.Message) []IgnoredField {
	if m.c == nil || meta.ResourceVersion == "" {
		return ReportIgnoredFields(spec, "spec")
	}
	key := hashKey{kind, meta.Namespace, meta.Name, string(meta.UID), meta.ResourceVersion}
	v, ok := m.c.ignored[key]
	if !ok {
		v = ReportIgnoredFields(spec, "spec")
	}
	m.next[key] = v
	return v
}

// reportIgnoredInputs reports the ignored fields of every implemented object.
func (s *Snapshot) reportIgnoredInputs(in *Inputs) {
	memo := in.Hashes.beginIgnored()
	defer memo.end()
	report := func(kind string, meta metav1.ObjectMeta, spec proto.Message) {
		for _, f := range memo.fields(kind, meta, spec) {
			s.addError(ConfigError{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Field: f.Path, Code: "IgnoredField", Warning: true, Message: f.Message})
		}
	}
	for _, o := range in.VirtualServices {
		report("VirtualService", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.DestinationRules {
		report("DestinationRule", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.Gateways {
		report("Gateway", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.ServiceEntries {
		report("ServiceEntry", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.Sidecars {
		report("Sidecar", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.PeerAuthentications {
		report("PeerAuthentication", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.AuthorizationPolicies {
		report("AuthorizationPolicy", o.ObjectMeta, &o.Spec)
	}
	for _, o := range in.RequestAuthentications {
		report("RequestAuthentication", o.ObjectMeta, &o.Spec)
	}
}

// coverageTable is built once and only read.
var coverageTable = sync.OnceValue(fieldCoverage)

// IgnoredFieldErrors are the IgnoredField warnings of one object, for the
// admission webhook (kubectl prints them on apply).
func IgnoredFieldErrors(kind string, meta metav1.ObjectMeta, spec proto.Message) []ConfigError {
	var out []ConfigError
	for _, f := range ReportIgnoredFields(spec, "spec") {
		out = append(out, ConfigError{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Field: f.Path, Code: "IgnoredField", Warning: true, Message: f.Message})
	}
	return out
}
