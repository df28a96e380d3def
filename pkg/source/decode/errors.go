package decode

import (
	"errors"
	"fmt"

	sigsjson "sigs.k8s.io/json"
)

// FieldError is a decoding problem at one field of an object. It renders as
// `field: reason`, the form every decoding error here takes, so a caller that
// only prints errors needs nothing else; a caller that reports the field on its
// own (a log attribute, an API status) gets it from Field.
type FieldError struct {
	// Field is a path into the object, e.g. "spec.http[0].route[0].weight".
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func fieldErr(path, format string, args ...any) *FieldError {
	return &FieldError{Field: path, Reason: fmt.Sprintf(format, args...)}
}

// Field splits a decoding error into the field it concerns and the reason.
// Field is empty when the error names no field (e.g. "missing metadata.name").
// Strict-decoding errors of Kubernetes types (`unknown field "spec.foo"`) keep
// their message whole (all of them, when there are several) as the reason,
// with the first one's field also given on its own.
func Field(err error) (field, reason string) {
	if err == nil {
		return "", ""
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, fe.Reason
	}
	var se sigsjson.FieldError
	if errors.As(err, &se) {
		return se.FieldPath(), err.Error()
	}
	return "", err.Error()
}

// reasonOf is the message of err without its field path.
func reasonOf(err error) string {
	_, r := Field(err)
	return r
}
