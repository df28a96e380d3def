package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/decode"
)

const (
	// meshConfigMap is the only ConfigMap model.Inputs carries. Others are
	// skipped unread, so an unrelated ConfigMap in the directory can't break
	// its file.
	meshConfigMap = "istio"
)

// object is one decoded config object together with where it came from, so
// duplicates can be reported against both files.
type object struct {
	decode.Object
	doc, line int
}

func (o *object) key() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// document is one YAML document of a file.
type document struct {
	index int // 1-based, counting only documents with content
	// line is the first content line, what an editor should jump to.
	line int
	// firstLine is the line data starts at, to turn the YAML parser's
	// document-relative line numbers into file line numbers.
	firstLine int
	data      []byte
}

// splitDocuments cuts a file at `---` lines the way Kubernetes' YAML reader
// does (a `---` followed by anything but a comment is content, not a
// separator). Documents holding only comments and blank lines are dropped and
// not counted: numbering them would make "doc 2" disagree with what a reader
// sees as the second object.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var (
		docs      []document
		start     = 0 // byte offset of the current chunk
		startLine = 1
		content   = 0 // first content line of the current chunk, 0 if none
		lineNo    = 0
	)
	flush := func(end int) {
		if content > 0 {
			docs = append(docs, document{
				index:     len(docs) + 1,
				line:      content,
				firstLine: startLine,
				data:      data[start:end],
			})
		}
	}
	for off := 0; off < len(data); {
		lineNo++
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		line := bytes.TrimRight(data[off:next], "\r\n")
		if isSeparator(line) {
			flush(off)
			start, startLine, content = next, lineNo+1, 0
		} else if content == 0 {
			t := bytes.TrimSpace(line)
			if len(t) > 0 && t[0] != '#' {
				content = lineNo
			}
		}
		off = next
	}
	flush(len(data))
	return docs
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}

// parsed is the outcome of decoding one file.
type parsed struct {
	objects []object
	errs    []*Error
	// fingerprint covers the JSON form of every document, so edits to comments
	// or formatting don't count as a change.
	fingerprint [sha256.Size]byte
}

// decodeOptions tune parseFile.
type decodeOptions struct {
	// keepOtherSecrets: see Options.KeepOtherSecrets.
	keepOtherSecrets bool
}

// parseFile decodes every document of a file. Unsupported kinds are logged and
// skipped: a directory shared with other tooling should not be an error.
func parseFile(path string, data []byte, log *slog.Logger, opts decodeOptions) parsed {
	var (
		out parsed
		h   = sha256.New()
	)
	for _, d := range splitDocuments(data) {
		errCode := func(code, kind, ns, name string, err error) {
			out.errs = append(out.errs, &Error{File: path, Doc: d.index, Line: d.line, Kind: kind, Namespace: ns, Name: name, Code: code, Err: err})
		}
		errAt := func(kind, ns, name string, err error) { errCode("", kind, ns, name, err) }
		j, err := yaml.YAMLToJSONStrict(d.data)
		if err != nil {
			errAt("", "", "", yamlError(err, d.firstLine))
			continue
		}
		h.Write(j)
		h.Write([]byte{0})
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		hdr, err := decode.ReadHeader(j)
		if err != nil {
			errAt(hdr.Kind, hdr.Namespace(), hdr.Metadata.Name, err)
			continue
		}
		// decodeOne handles one object: the document itself or an item of a List.
		decodeOne := func(h decode.Header, j []byte, where string) {
			if h.APIVersion == "v1" && h.Kind == "ConfigMap" && h.Metadata.Name != meshConfigMap {
				log.Debug("skipping ConfigMap: only the mesh ConfigMap is used",
					"file", path, "doc", d.index, "line", d.line, "name", h.Metadata.Name)
				return
			}
			o, err := decode.FromJSON(h, j)
			if err != nil {
				errAt(h.Kind, h.Namespace(), h.Metadata.Name, prefixErr(where, err))
				return
			}
			if o == nil && h.APIVersion == "v1" && h.Kind == "Secret" {
				// Decoded strictly already (and skipped); read again for its
				// type and keys.
				sec := &corev1.Secret{}
				_ = json.Unmarshal(j, sec)
				if err := skippedSecretError(sec); err != nil {
					errCode(CodeInvalidSecret, h.Kind, h.Namespace(), h.Metadata.Name, prefixErr(where, err))
					return
				}
				if o = keysOnlySecret(h, sec, opts); o == nil {
					log.Debug("skipping Secret: not a gateway credential (none of the keys tls.crt, cert, ca.crt, cacert)",
						"file", path, "doc", d.index, "line", d.line, "name", h.Metadata.Name)
					return
				}
			}
			if o == nil {
				log.Warn("skipping unsupported kind", "file", path, "doc", d.index, "line", d.line,
					"apiVersion", h.APIVersion, "kind", h.Kind, "name", h.Metadata.Name)
				return
			}
			// The apiserver refuses these names; here nothing else would.
			if err := model.ObjectNameError(o.Kind, o.Namespace, o.Name); err != nil {
				errCode(CodeInvalidName, o.Kind, o.Namespace, o.Name, prefixErr(where, err))
				return
			}
			out.objects = append(out.objects, object{Object: *o, doc: d.index, line: d.line})
		}
		if hdr.Kind != "List" {
			decodeOne(hdr, j, "")
			continue
		}
		items, err := listItems(j)
		if err != nil {
			errAt(hdr.Kind, "", hdr.Metadata.Name, err)
			continue
		}
		for i, item := range items {
			where := fmt.Sprintf("items[%d]", i)
			ih, err := decode.ReadHeader(item)
			if err != nil {
				errAt(ih.Kind, ih.Namespace(), ih.Metadata.Name, prefixErr(where, err))
				continue
			}
			decodeOne(ih, item, where)
		}
	}
	h.Sum(out.fingerprint[:0])
	return out
}

// skippedSecretError says why Kubernetes would refuse a Secret that the
// decoder skipped as no gateway credential: one of type kubernetes.io/tls must
// hold tls.crt and tls.key. Skipped silently, it would be absent, and a
// Gateway naming it would report "no TLS Secret" for a Secret in plain sight.
// (A TLS Secret with tls.crt alone is kept, and the model says what it lacks.)
func skippedSecretError(sec *corev1.Secret) error {
	if sec.Type != corev1.SecretTypeTLS {
		return nil
	}
	var missing []string
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		_, inData := sec.Data[k]
		_, inString := sec.StringData[k]
		if !inData && !inString {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	have := slices.Sorted(maps.Keys(sec.Data))
	for _, k := range slices.Sorted(maps.Keys(sec.StringData)) {
		have = append(have, k+" (stringData)")
	}
	return fmt.Errorf("type kubernetes.io/tls needs keys tls.crt and tls.key (Kubernetes refuses it without them); it lacks %s, its keys are [%s]",
		strings.Join(missing, " and "), strings.Join(have, ", "))
}

// keysOnlySecret is a Secret the decoder skipped as no gateway credential,
// with its values dropped, when opts keep such Secrets; else nil.
func keysOnlySecret(h decode.Header, sec *corev1.Secret, opts decodeOptions) *decode.Object {
	if !opts.keepOtherSecrets {
		return nil
	}
	// Annotations stay out too: kubectl's last-applied-configuration would
	// carry the values.
	keys := &corev1.Secret{TypeMeta: sec.TypeMeta, Type: sec.Type, Data: map[string][]byte{},
		ObjectMeta: metav1.ObjectMeta{Name: sec.Name, Namespace: h.Namespace(), Labels: sec.Labels}}
	for k := range sec.Data {
		keys.Data[k] = nil
	}
	for k := range sec.StringData {
		keys.Data[k] = nil
	}
	return &decode.Object{Kind: "Secret", Namespace: keys.Namespace, Name: keys.Name, Value: keys}
}

func prefixErr(where string, err error) error {
	if where == "" {
		return err
	}
	return fmt.Errorf("%s: %w", where, err)
}

var yamlLine = regexp.MustCompile(`\bline (\d+)`)

// yamlError rewrites the parser's line numbers, which count from the start of
// the document, into file line numbers.
func yamlError(err error, firstLine int) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, convErr := strconv.Atoi(m[len("line "):])
		if convErr != nil {
			return m
		}
		return "line " + strconv.Itoa(n+firstLine-1)
	})
	return errors.New(msg)
}

func listItems(j []byte) ([]json.RawMessage, error) {
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &l); err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	return l.Items, nil
}
