package model

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
	// Values, for an applied enum, are the values applied; any other value is
	// reported.
	Values []string
}

func applied(where string, values ...string) FieldUse { return FieldUse{Where: where, Values: values} }
func ignored(why string) FieldUse                     { return FieldUse{Ignored: why} }
func checked(where string) FieldUse                   { return FieldUse{Checked: where} }

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
func ReportIgnoredFields(spec proto.Message, base string) []IgnoredField {
	if spec == nil {
		return nil
	}
	table := coverageTable()
	var out []IgnoredField
	var walk func(m protoreflect.Message, path string)
	walk = func(m protoreflect.Message, path string) {
		fields := table[coverageKey(m.Descriptor())]
		var set []protoreflect.FieldDescriptor
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			set = append(set, fd)
			return true
		})
		sort.Slice(set, func(i, j int) bool { return set[i].Number() < set[j].Number() })
		for _, fd := range set {
			v := m.Get(fd)
			p := fd.JSONName()
			if path != "" {
				p = path + "." + p
			}
			use, known := fields[fd.JSONName()]
			switch {
			case !known:
				out = append(out, IgnoredField{p, "mizzen does not know this field; it is not applied"})
				continue
			case use.Checked != "":
				continue
			case use.Where == "":
				out = append(out, IgnoredField{p, "not applied by mizzen: " + use.Ignored})
				continue
			}
			if len(use.Values) > 0 && fd.Enum() != nil {
				each(fd, v, p, func(x protoreflect.Value, at string) {
					name := string(fd.Enum().Values().ByNumber(x.Enum()).Name())
					if !contains(use.Values, name) {
						out = append(out, IgnoredField{at, fmt.Sprintf("value %s is not applied by mizzen (it applies %s)", name, strings.Join(use.Values, ", "))})
					}
				})
			}
			if msgOf(fd) == nil || strings.HasPrefix(string(msgOf(fd).FullName()), "google.protobuf.") {
				continue
			}
			each(fd, v, p, func(x protoreflect.Value, at string) { walk(x.Message(), at) })
		}
	}
	walk(spec.ProtoReflect(), base)
	return out
}

// msgOf is the message a field holds (a map's value), or nil.
func msgOf(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		return fd.MapValue().Message()
	}
	return fd.Message()
}

// each calls f for the value, each list element or each map value, with its path.
func each(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, f func(protoreflect.Value, string)) {
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			f(l.Get(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case fd.IsMap():
		var keys []string
		vals := map[string]protoreflect.Value{}
		v.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
			keys = append(keys, k.String())
			vals[k.String()] = x
			return true
		})
		sort.Strings(keys)
		for _, k := range keys {
			f(vals[k], fmt.Sprintf("%s[%s]", path, k))
		}
	default:
		f(v, path)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// reportIgnored adds a warning for each set field of spec mizzen does not apply.
func (s *Snapshot) reportIgnored(kind, ns, name string, spec proto.Message) {
	for _, f := range ReportIgnoredFields(spec, "spec") {
		s.addError(ConfigError{Kind: kind, Namespace: ns, Name: name, Field: f.Path, Code: "IgnoredField", Warning: true, Message: f.Message})
	}
}

// reportIgnoredInputs reports the ignored fields of every implemented object.
func (s *Snapshot) reportIgnoredInputs(in *Inputs) {
	for _, o := range in.VirtualServices {
		s.reportIgnored("VirtualService", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.DestinationRules {
		s.reportIgnored("DestinationRule", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.Gateways {
		s.reportIgnored("Gateway", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.ServiceEntries {
		s.reportIgnored("ServiceEntry", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.Sidecars {
		s.reportIgnored("Sidecar", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.PeerAuthentications {
		s.reportIgnored("PeerAuthentication", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.AuthorizationPolicies {
		s.reportIgnored("AuthorizationPolicy", o.Namespace, o.Name, &o.Spec)
	}
	for _, o := range in.RequestAuthentications {
		s.reportIgnored("RequestAuthentication", o.Namespace, o.Name, &o.Spec)
	}
}

// coverageTable is built once and only read.
var coverageTable = sync.OnceValue(fieldCoverage)
