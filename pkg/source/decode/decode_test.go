package decode

import (
	"errors"
	"fmt"
	"testing"
)

func TestFieldOfEachErrorForm(t *testing.T) {
	const vs = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"v","namespace":"x"%s},"spec":%s}`
	tests := []struct {
		name, json, field, reason string
	}{
		{"spec type", fmt.Sprintf(vs, "", `{"http":[{"route":[{"destination":{"host":"a"},"weight":"heavy"}]}]}`),
			"spec.http[0].route[0].weight", `expected an integer (int32), got string "heavy"`},
		{"spec unknown field", fmt.Sprintf(vs, "", `{"htpp":[]}`),
			"spec.htpp", `unknown field "htpp" (did you mean "http"?)`},
		{"oneof", fmt.Sprintf(vs, "", `{"http":[{"match":[{"uri":{"exact":"/a","prefix":"/b"}}]}]}`),
			"spec.http[0].match[0].uri", `only one of "exact" and "prefix" may be set`},
		{"metadata", fmt.Sprintf(vs, `,"lables":{}`, `{}`),
			"metadata.lables", `unknown field "metadata.lables"`},
		{"kubernetes type", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":"eighty"}]}}`,
			"spec.ports.port", "expected int32, got string"},
		{"no field", `{"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication","metadata":{"namespace":"x"}}`,
			"", "missing metadata.name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ReadHeader([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			_, err = FromJSON(h, []byte(tc.json))
			if err == nil {
				t.Fatal("no error")
			}
			field, reason := Field(err)
			if field != tc.field || reason != tc.reason {
				t.Errorf("Field() = %q, %q; want %q, %q", field, reason, tc.field, tc.reason)
			}
			// Wrapping (as the file source does for List items) keeps the field.
			if f, _ := Field(errors.Join(err)); f != tc.field {
				t.Errorf("field lost through wrapping: %q", f)
			}
		})
	}
}
