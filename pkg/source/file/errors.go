package file

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Codes of Error, as model.ConfigError codes (metrics, analyze, debug views).
const (
	// CodeParse: the file, or a document of it, could not be read or decoded;
	// the file keeps contributing its previous good version.
	CodeParse = "ParseError"
	// CodeDuplicate: a later definition of an object already defined; skipped.
	CodeDuplicate = "Duplicate"
	// CodeInvalidName: a name Kubernetes would refuse for the kind; the file
	// keeps contributing its previous good version.
	CodeInvalidName = "InvalidName"
	// CodeInvalidSecret: a Secret Kubernetes would refuse (type
	// kubernetes.io/tls without tls.crt and tls.key); the file keeps
	// contributing its previous good version.
	CodeInvalidSecret = "InvalidSecret"
)

// Error locates a problem in a config file precisely enough to jump to it: the
// file, the document within it and the line where that document starts, and the
// object when its identity could be read.
type Error struct {
	File string
	// Doc is the 1-based index of the document in the file, counting only
	// documents with content; 0 when the problem concerns the whole file.
	Doc int
	// Line is the 1-based line of the document's first content line.
	Line int

	Kind, Namespace, Name string

	// Code is one of the Code constants; empty means CodeParse.
	Code string

	Err error

	// key, when set, identifies the problem for reporting it once while it
	// lasts, where the message may change without the problem changing.
	key string
}

// Error renders as `file: doc N (line L): Kind ns/name: reason`, dropping the
// parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Doc > 0 {
		b.WriteString(": doc ")
		b.WriteString(strconv.Itoa(e.Doc))
		b.WriteString(" (line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(")")
	}
	if e.Kind != "" || e.Name != "" {
		b.WriteString(": ")
		b.WriteString(e.Kind)
		if e.Name != "" {
			if e.Kind != "" {
				b.WriteString(" ")
			}
			if e.Namespace != "" {
				b.WriteString(e.Namespace)
				b.WriteString("/")
			}
			b.WriteString(e.Name)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) reportKey() string {
	if e.key != "" {
		return e.key
	}
	return e.Error()
}

// ConfigError is e as the model reports problems: the object (kind "File" when
// the problem is not one object's), where in which file, and the reason.
func (e *Error) ConfigError() model.ConfigError {
	kind, code, field := e.Kind, e.Code, e.File
	if kind == "" {
		kind = "File"
	}
	if code == "" {
		code = CodeParse
	}
	if e.Doc > 0 {
		field = fmt.Sprintf("%s doc %d (line %d)", e.File, e.Doc, e.Line)
	}
	msg := ""
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return model.ConfigError{Kind: kind, Namespace: e.Namespace, Name: e.Name, Field: field, Code: code, Message: msg}
}
