package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mizzenmesh/mizzen/pkg/textdist"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkSpec walks the JSON of an Istio spec alongside its proto descriptor and
// reports the first problem with its path (spec.http[0].route[0].weight). jsonpb
// does the actual decoding afterwards, but its errors name neither the field
// path nor, for type errors, the field at all. The checks accept exactly what
// jsonpb accepts (either JSON or proto field names, enums by name or number,
// numbers in quotes, Go duration strings, nulls as unset) so they never reject
// config Istio would take, apart from unknown fields and conflicting oneofs.
func checkSpec(md protoreflect.MessageDescriptor, raw json.RawMessage) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fieldErr("spec", "%v", err)
	}
	return checkMessage(md, v, "spec")
}

func checkMessage(md protoreflect.MessageDescriptor, v any, path string) error {
	switch md.FullName() {
	case "google.protobuf.Duration":
		s, ok := v.(string)
		if !ok {
			return typeError(path, `a duration string such as "1s" or "500ms"`, v)
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fieldErr(path, "invalid duration %q: expected a duration such as \"1s\" or \"500ms\"", s)
		}
		return nil
	case "google.protobuf.Timestamp":
		s, ok := v.(string)
		if !ok {
			return typeError(path, "an RFC 3339 timestamp", v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fieldErr(path, "invalid timestamp %q: %v", s, err)
		}
		return nil
	case "google.protobuf.BoolValue", "google.protobuf.BytesValue", "google.protobuf.StringValue",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value", "google.protobuf.DoubleValue":
		return checkSingular(md.Fields().ByNumber(1), v, path)
	case "google.protobuf.Value":
		return nil
	case "google.protobuf.Struct", "google.protobuf.Any":
		if _, ok := v.(map[string]any); !ok {
			return typeError(path, "an object", v)
		}
		return nil
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			return typeError(path, "a list", v)
		}
		return nil
	}

	obj, ok := v.(map[string]any)
	if !ok {
		return typeError(path, "an object", v)
	}
	fields := md.Fields()
	seen := map[protoreflect.Name]string{}
	oneofs := map[protoreflect.Name]string{}
	// Sorted so that the same file always reports the same first error.
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil {
			return unknownField(path, key, fields)
		}
		if prev, dup := seen[fd.Name()]; dup {
			return fieldErr(path, "field set twice, as %q and %q", prev, key)
		}
		seen[fd.Name()] = key
		val := obj[key]
		if val == nil {
			continue
		}
		if oo := fd.ContainingOneof(); oo != nil && !oo.IsSynthetic() {
			if prev, dup := oneofs[oo.Name()]; dup {
				return fieldErr(path, "only one of %q and %q may be set", prev, key)
			}
			oneofs[oo.Name()] = key
		}
		if err := checkField(fd, val, path+"."+key); err != nil {
			return err
		}
	}
	return nil
}

func checkField(fd protoreflect.FieldDescriptor, v any, path string) error {
	switch {
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			return typeError(path, "a list", v)
		}
		for i, e := range list {
			if e == nil {
				continue
			}
			if err := checkSingular(fd, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return typeError(path, "an object", v)
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if fd.MapKey().Kind() != protoreflect.StringKind {
				if err := checkSingular(fd.MapKey(), k, path); err != nil {
					return fieldErr(path, "key %q: %s", k, reasonOf(err))
				}
			}
			if m[k] == nil {
				continue
			}
			if err := checkSingular(fd.MapValue(), m[k], path+"["+k+"]"); err != nil {
				return err
			}
		}
		return nil
	}
	return checkSingular(fd, v, path)
}

func checkSingular(fd protoreflect.FieldDescriptor, v any, path string) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return typeError(path, "true or false", v)
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return checkInt(path, v, 32, true)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return checkInt(path, v, 64, true)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return checkInt(path, v, 32, false)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return checkInt(path, v, 64, false)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		s, ok := numberText(v)
		if ok && (s == "NaN" || s == "Infinity" || s == "-Infinity") {
			return nil
		}
		if !ok {
			return typeError(path, "a number", v)
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return typeError(path, "a number", v)
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return typeError(path, "a string", v)
		}
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok {
			return typeError(path, "a base64 string", v)
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return fieldErr(path, "invalid base64: %v", err)
		}
	case protoreflect.EnumKind:
		return checkEnum(fd.Enum(), v, path)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(fd.Message(), v, path)
	}
	return nil
}

func checkInt(path string, v any, bits int, signed bool) error {
	s, ok := numberText(v)
	var err error
	if ok {
		if signed {
			_, err = strconv.ParseInt(s, 10, bits)
		} else {
			_, err = strconv.ParseUint(s, 10, bits)
		}
	}
	if !ok || err != nil {
		want := fmt.Sprintf("an integer (int%d)", bits)
		if !signed {
			want = fmt.Sprintf("a non-negative integer (uint%d)", bits)
		}
		return typeError(path, want, v)
	}
	return nil
}

// numberText accepts numbers and numbers in quotes, as jsonpb does for the
// 64-bit types that JSON cannot hold exactly.
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return n.String(), true
	case string:
		return n, true
	}
	return "", false
}

func checkEnum(ed protoreflect.EnumDescriptor, v any, path string) error {
	switch e := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(e)) != nil {
			return nil
		}
	case json.Number:
		if _, err := strconv.ParseInt(e.String(), 10, 32); err == nil {
			return nil
		}
	}
	names := make([]string, 0, ed.Values().Len())
	for i := range ed.Values().Len() {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	return fieldErr(path, "invalid value %s: must be one of %s", describe(v), strings.Join(names, ", "))
}

func typeError(path, want string, got any) error {
	return fieldErr(path, "expected %s, got %s", want, describe(got))
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return "string " + strconv.Quote(x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return "bool " + strconv.FormatBool(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", v)
}

func unknownField(path, key string, fields protoreflect.FieldDescriptors) error {
	best, bestDist := "", 3
	for i := range fields.Len() {
		name := fields.Get(i).JSONName()
		if d := textdist.Levenshtein(strings.ToLower(key), strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fieldErr(path+"."+key, "unknown field %q (did you mean %q?)", key, best)
	}
	return fieldErr(path+"."+key, "unknown field %q", key)
}
