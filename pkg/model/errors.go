package model

import "fmt"

// ConfigError is one problem found in one object. The object is skipped (or the
// offending part of it), the rest of the mesh keeps flowing.
type ConfigError struct {
	Kind      string
	Namespace string
	Name      string
	// Field is a path into the object, e.g. "spec.http[0].route[1].weight".
	Field string
	// Code is a stable identifier for tooling, e.g. "InvalidRegex", "WeightsNotSum100".
	Code    string
	Message string
	// Warning errors are reported but the object is still applied.
	Warning bool
}

func (e ConfigError) Error() string {
	sev := "error"
	if e.Warning {
		sev = "warning"
	}
	s := fmt.Sprintf("%s %s %s/%s", sev, e.Kind, e.Namespace, e.Name)
	if e.Field != "" {
		s += " " + e.Field
	}
	return fmt.Sprintf("%s: %s [%s]", s, e.Message, e.Code)
}
