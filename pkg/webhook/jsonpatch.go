package webhook

import (
	"reflect"
	"sort"
	"strings"
)

// Op is one RFC 6902 JSON Patch operation.
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Diff returns a JSON Patch turning a into b, both decoded JSON
// (map[string]any, []any, scalars). Objects are diffed member by member; an
// array that only grew at its end gets `add …/-` for the new elements (the
// injector appends containers, init containers and volumes, and this keeps
// the patch from rewriting the pod's own); any other array change replaces
// the array whole, which is always right if not minimal.
func Diff(a, b any) []Op {
	var ops []Op
	diff(&ops, "", a, b)
	return ops
}

func diff(ops *[]Op, path string, a, b any) {
	if reflect.DeepEqual(a, b) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(av)+len(bv))
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "/" + escape(k)
			x, inA := av[k]
			y, inB := bv[k]
			switch {
			case !inB:
				*ops = append(*ops, Op{Op: "remove", Path: p})
			case !inA:
				*ops = append(*ops, Op{Op: "add", Path: p, Value: y})
			default:
				diff(ops, p, x, y)
			}
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok || len(bv) < len(av) || !reflect.DeepEqual(av, bv[:len(av)]) {
			break
		}
		for _, v := range bv[len(av):] {
			*ops = append(*ops, Op{Op: "add", Path: path + "/-", Value: v})
		}
		return
	}
	*ops = append(*ops, Op{Op: "replace", Path: path, Value: b})
}

// escape is RFC 6901's escaping of one reference token: annotation keys
// such as sidecar.istio.io/status hold a "/".
func escape(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}
