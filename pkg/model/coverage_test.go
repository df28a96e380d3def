package model

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	_ "istio.io/api/mesh/v1alpha1"
	_ "istio.io/api/networking/v1alpha3"
	_ "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"
)

// step is how a field is reached from its root message: the field, and for
// a list or map the element it goes through.
type step struct {
	msg   protoreflect.MessageDescriptor
	field protoreflect.FieldDescriptor
}

// reachable enumerates, from istio.io/api's descriptors, every field that
// ReportIgnoredFields can meet: the fields of the roots and of every message
// held by an applied field. For each it returns the path from its root.
func reachable(t *testing.T) map[string][]step {
	t.Helper()
	table := FieldCoverage()
	out := map[string][]step{}
	seen := map[string]bool{}
	var walk func(md protoreflect.MessageDescriptor, path []step)
	walk = func(md protoreflect.MessageDescriptor, path []step) {
		key := coverageKey(md)
		if seen[key] || strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			return
		}
		seen[key] = true
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			p := append(append([]step(nil), path...), step{md, fd})
			out[key+"."+fd.JSONName()] = p
			use := table[key][fd.JSONName()]
			if use.Where != "" && msgOf(fd) != nil {
				walk(msgOf(fd), p)
			}
		}
	}
	for _, root := range CoverageRoots {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("istio." + root))
		if err != nil {
			t.Fatalf("root %s: %v", root, err)
		}
		walk(d.(protoreflect.MessageDescriptor), nil)
	}
	return out
}

// TestFieldCoverage: every field of the Istio API that mizzen reads is either
// applied (in the file named, which must mention it), reported by a check of
// its own (in the file named), or reported as ignored whenever it is set —
// the last checked for real, by setting each such field in an otherwise empty
// object and asking ReportIgnoredFields.
func TestFieldCoverage(t *testing.T) {
	table := FieldCoverage()
	fields := reachable(t)
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	root := filepath.Join("..", "..")
	sources := map[string]string{}
	mentions := func(file, json string) bool {
		src, ok := sources[file]
		if !ok {
			b, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Errorf("%s: %v", file, err)
			}
			src = strings.ToLower(strings.ReplaceAll(string(b), "_", ""))
			sources[file] = src
		}
		return strings.Contains(src, strings.ToLower(json))
	}
	counts := map[string]int{}
	for _, k := range keys {
		i := strings.LastIndex(k, ".")
		msg, json := k[:i], k[i+1:]
		use, ok := table[msg][json]
		switch {
		case !ok:
			t.Errorf("%s: neither applied nor reported: add it to coverage_table.go", k)
		case use.Where != "":
			counts["applied"]++
			if !mentions(use.Where, json) {
				t.Errorf("%s: applied in %s, which does not mention %s", k, use.Where, json)
			}
			if fd := fields[k][len(fields[k])-1].field; fd.Enum() != nil {
				checkEnumValues(t, k, fields[k], use, mentions)
				counts["enums"]++
			}
		case use.Checked != "":
			counts["checked"]++
			if !mentions(use.Checked, json) {
				t.Errorf("%s: reported by %s, which does not mention %s", k, use.Checked, json)
			}
		case use.Ignored == "":
			t.Errorf("%s: not applied, and no reason given", k)
		default:
			counts["ignored"]++
			checkReported(t, k, fields[k])
		}
	}
	for msg, fs := range table {
		for json := range fs {
			if _, ok := fields[msg+"."+json]; !ok {
				t.Errorf("%s.%s: in coverage_table.go but not a field reachable through applied fields (stale?)", msg, json)
			}
		}
	}
	t.Logf("%d fields reachable: %d applied (%d enums, value by value), %d reported by their own checks, %d reported as ignored",
		len(keys), counts["applied"], counts["enums"], counts["checked"], counts["ignored"])
}

// checkEnumValues: an applied enum lists the values applied (its zero value
// among them: set or not cannot be told apart); every other value is reported
// when set, by ReportIgnoredFields or (CheckedValues) by a check of its own.
func checkEnumValues(t *testing.T, key string, path []step, use FieldUse, mentions func(file, s string) bool) {
	t.Helper()
	fd := path[len(path)-1].field
	vals := fd.Enum().Values()
	known := map[string]bool{}
	for i := 0; i < vals.Len(); i++ {
		known[string(vals.Get(i).Name())] = true
	}
	for _, v := range append(append([]string(nil), use.Values...), use.CheckedValues...) {
		if !known[v] && v != OutsideEnum {
			t.Errorf("%s: value %s is not in the enum", key, v)
		}
	}
	if zero := string(vals.ByNumber(0).Name()); !contains(use.Values, zero) {
		t.Errorf("%s: an applied enum lists its applied values, its zero value %s among them", key, zero)
	}
	if contains(use.CheckedValues, OutsideEnum) && !mentions("pkg/model/peerauthentication.go", "unknown mode") {
		t.Errorf("%s: numbers outside the enum are said to be checked, but peerauthentication.go does not", key)
	}
	for i := 0; i < vals.Len(); i++ {
		v := vals.Get(i)
		name := string(v.Name())
		switch {
		case contains(use.Values, name):
		case contains(use.CheckedValues, name):
			if !mentions("pkg/model/validate_trafficpolicy.go", name) && !mentions("pkg/model/authorization.go", name) {
				t.Errorf("%s: value %s is said to be checked, but no check mentions it", key, name)
			}
		default:
			checkReportedAt(t, key, path, &protoreflect.Value{}, v.Number())
		}
	}
}

// checkReported builds the root message with the field at the end of path
// set (going through one element of each list or map on the way) and
// expects ReportIgnoredFields to name it.
func checkReported(t *testing.T, key string, path []step) {
	t.Helper()
	checkReportedAt(t, key, path, nil, 0)
}

// checkReportedAt sets the field at the end of path (to enum value number
// when value is not nil) and expects ReportIgnoredFields to report it.
func checkReportedAt(t *testing.T, key string, path []step, value *protoreflect.Value, number protoreflect.EnumNumber) {
	t.Helper()
	prefix := "not applied by mizzen: "
	if value != nil {
		*value = protoreflect.ValueOfEnum(number)
		prefix = "value "
	}
	rootType, err := protoregistry.GlobalTypes.FindMessageByName(path[0].msg.FullName())
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return
	}
	root := rootType.New()
	m := root
	var want strings.Builder
	want.WriteString("spec")
	for i, s := range path {
		fd := s.field
		want.WriteString("." + fd.JSONName())
		last := i == len(path)-1
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			if fd.Message() != nil {
				el := l.NewElement()
				l.Append(el)
				m = el.Message()
			} else {
				l.Append(sample(fd))
			}
			if !last {
				want.WriteString("[0]")
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			k := sample(fd.MapKey()).MapKey()
			if fd.MapValue().Message() != nil {
				m = mp.Mutable(k).Message()
			} else {
				mp.Set(k, sample(fd.MapValue()))
			}
			if !last {
				want.WriteString("[" + k.String() + "]")
			}
		case fd.Message() != nil:
			m = m.Mutable(fd).Message()
		case last && value != nil:
			m.Set(fd, *value)
		default:
			m.Set(fd, sample(fd))
		}
	}
	got := ReportIgnoredFields(root.Interface().(proto.Message), "spec")
	for _, f := range got {
		if f.Path == want.String() && strings.HasPrefix(f.Message, prefix) {
			return
		}
	}
	t.Errorf("%s: set at %s, but ReportIgnoredFields says %+v", key, want.String(), got)
}

// sample is a non-default value of a scalar field.
func sample(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vs := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vs.Get(vs.Len() - 1).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(1)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(1)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte("x"))
	default:
		return protoreflect.ValueOfString("x")
	}
}

// TestEveryIstioKindIsImplementedOrReported: each kind in istio.io/api's CRDs
// is one mizzen implements or one model.UnimplementedKinds reports.
func TestEveryIstioKindIsImplementedOrReported(t *testing.T) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	dir, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m istio.io/api: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	implemented := map[string]bool{}
	for _, k := range []string{"VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar",
		"PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication"} {
		implemented[k] = true
	}
	n := 0
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &crd); err != nil || crd.Spec.Names.Kind == "" {
			continue
		}
		n++
		g, k := crd.Spec.Group, crd.Spec.Names.Kind
		if (g == "networking.istio.io" || g == "security.istio.io") && implemented[k] {
			continue
		}
		if _, ok := UnimplementedKindOf(g+"/v1", k); !ok {
			t.Errorf("%s (%s): neither implemented nor in UnimplementedKinds", k, g)
		}
	}
	if n < 10 {
		t.Fatalf("read only %d CRDs", n)
	}
}
