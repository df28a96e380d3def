package file

import (
	"strconv"
	"strings"
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

	Err error
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
