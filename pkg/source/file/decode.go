package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	jsonpb "github.com/golang/protobuf/jsonpb"
	protov1 "github.com/golang/protobuf/proto"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	networkingGroup = "networking.istio.io"
	securityGroup   = "security.istio.io"
	defaultNS       = "default"
	// meshConfigMap is the only ConfigMap model.Inputs carries. Others are
	// skipped unread, so an unrelated ConfigMap in the directory can't break
	// its file.
	meshConfigMap = "istio"
)

// object is one decoded config object together with where it came from, so
// duplicates can be reported against both files.
type object struct {
	kind      string // canonical kind, the same for every served version
	namespace string
	name      string
	doc, line int
	value     any // a pointer to one of the types model.Inputs holds
}

func (o *object) key() string { return o.kind + "/" + o.namespace + "/" + o.name }

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

// parseFile decodes every document of a file. Unsupported kinds are logged and
// skipped: a directory shared with other tooling should not be an error.
func parseFile(path string, data []byte, log *slog.Logger) parsed {
	var (
		out parsed
		h   = sha256.New()
	)
	for _, d := range splitDocuments(data) {
		errAt := func(kind, ns, name string, err error) {
			out.errs = append(out.errs, &Error{File: path, Doc: d.index, Line: d.line, Kind: kind, Namespace: ns, Name: name, Err: err})
		}
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
		hdr, err := readHeader(j)
		if err != nil {
			errAt(hdr.Kind, hdr.namespace(), hdr.Metadata.Name, err)
			continue
		}
		// decode handles one object: the document itself or an item of a List.
		decode := func(h header, j []byte, where string) {
			if h.APIVersion == "v1" && h.Kind == "ConfigMap" && h.Metadata.Name != meshConfigMap {
				log.Debug("skipping ConfigMap: only the mesh ConfigMap is used",
					"file", path, "doc", d.index, "line", d.line, "name", h.Metadata.Name)
				return
			}
			obj, err := decodeObject(h, j)
			if err != nil {
				errAt(h.Kind, h.namespace(), h.Metadata.Name, prefixErr(where, err))
				return
			}
			if obj == nil {
				log.Warn("skipping unsupported kind", "file", path, "doc", d.index, "line", d.line,
					"apiVersion", h.APIVersion, "kind", h.Kind, "name", h.Metadata.Name)
				return
			}
			obj.doc, obj.line = d.index, d.line
			out.objects = append(out.objects, *obj)
		}
		if hdr.Kind != "List" {
			decode(hdr, j, "")
			continue
		}
		items, err := listItems(j)
		if err != nil {
			errAt(hdr.Kind, "", hdr.Metadata.Name, err)
			continue
		}
		for i, item := range items {
			where := fmt.Sprintf("items[%d]", i)
			ih, err := readHeader(item)
			if err != nil {
				errAt(ih.Kind, ih.namespace(), ih.Metadata.Name, prefixErr(where, err))
				continue
			}
			decode(ih, item, where)
		}
	}
	h.Sum(out.fingerprint[:0])
	return out
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

// header is read leniently, before strict decoding, so that an error in the body
// can still name the object.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// namespace is the namespace the object will get, for naming it in errors.
func (h header) namespace() string {
	if h.Metadata.Namespace == "" && h.Kind != "" && h.Kind != "Namespace" && h.Metadata.Name != "" {
		return defaultNS
	}
	return h.Metadata.Namespace
}

func readHeader(j []byte) (header, error) {
	var h header
	if t := bytes.TrimSpace(j); len(t) == 0 || t[0] != '{' {
		return h, errors.New("document is not an object")
	}
	if err := json.Unmarshal(j, &h); err != nil {
		// A mistyped field in the header itself: report it, but still try to
		// pick out whatever identity parses.
		var loose map[string]any
		_ = json.Unmarshal(j, &loose)
		h.APIVersion, _ = loose["apiVersion"].(string)
		h.Kind, _ = loose["kind"].(string)
		if md, ok := loose["metadata"].(map[string]any); ok {
			h.Metadata.Name, _ = md["name"].(string)
			h.Metadata.Namespace, _ = md["namespace"].(string)
		}
		return h, fmt.Errorf("reading apiVersion/kind/metadata: %w", err)
	}
	switch {
	case h.Kind == "":
		return h, errors.New("missing kind")
	case h.APIVersion == "":
		return h, errors.New("missing apiVersion")
	}
	return h, nil
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

// decodeObject decodes one object strictly. It returns nil, nil for kinds the
// model does not use.
func decodeObject(h header, j []byte) (*object, error) {
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion: %w", err)
	}
	var (
		value any
		meta  *metav1.ObjectMeta
	)
	switch {
	case gv.Group == "" && gv.Version == "v1":
		switch h.Kind {
		case "Namespace":
			o := &corev1.Namespace{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "Service":
			o := &corev1.Service{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "Pod":
			o := &corev1.Pod{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "ServiceAccount":
			o := &corev1.ServiceAccount{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "List":
			return nil, errors.New("a List inside a List is not supported")
		default:
			return nil, nil
		}
	case gv.Group == "discovery.k8s.io" && gv.Version == "v1":
		if h.Kind != "EndpointSlice" {
			return nil, nil
		}
		o := &discoveryv1.EndpointSlice{}
		value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
	case gv.Group == networkingGroup && (gv.Version == "v1alpha3" || gv.Version == "v1beta1" || gv.Version == "v1"):
		switch h.Kind {
		case "VirtualService":
			o := &networking.VirtualService{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "DestinationRule":
			o := &networking.DestinationRule{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "Gateway":
			o := &networking.Gateway{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "ServiceEntry":
			o := &networking.ServiceEntry{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "Sidecar":
			o := &networking.Sidecar{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		default:
			return nil, nil
		}
	case gv.Group == securityGroup && (gv.Version == "v1beta1" || gv.Version == "v1"):
		switch h.Kind {
		case "PeerAuthentication":
			o := &security.PeerAuthentication{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "AuthorizationPolicy":
			o := &security.AuthorizationPolicy{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "RequestAuthentication":
			o := &security.RequestAuthentication{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		default:
			return nil, nil
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if meta.Name == "" {
		return nil, errors.New("missing metadata.name")
	}
	if meta.Namespace == "" && h.Kind != "Namespace" {
		meta.Namespace = defaultNS
	}
	return &object{kind: h.Kind, namespace: meta.Namespace, name: meta.Name, value: value}, nil
}

// decodeKube decodes a Kubernetes type the way the API server's strict field
// validation does: case-sensitive keys, no unknown or duplicate fields.
func decodeKube(j []byte, into any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(j, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return kubeTypeError(err)
	}
	return errors.Join(strictErrs...)
}

var jsonTypeError = regexp.MustCompile(`^json: cannot unmarshal (\w+) into Go struct field \w*\.(\S+) of type (\S+)$`)

// kubeTypeError restates encoding/json's type errors in the path-first form
// the Istio spec errors use; the Go struct name in them means nothing to
// someone editing YAML.
func kubeTypeError(err error) error {
	m := jsonTypeError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return fmt.Errorf("%s: expected %s, got %s", m[2], m[3], m[1])
}

// decodeIstio decodes an Istio object into its v1 client-go type whatever the
// served version was. The envelope is decoded separately from the spec because
// the spec's generated UnmarshalJSON silently drops unknown fields, which would
// let a misspelt field quietly change routing.
func decodeIstio(j []byte, tm *metav1.TypeMeta, om *metav1.ObjectMeta, spec protov1.Message) error {
	var env struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            json.RawMessage   `json:"spec"`
		// Status is written by controllers, not by people; a file exported
		// from a cluster carries it and it must not get in the way.
		Status json.RawMessage `json:"status"`
	}
	if err := decodeKube(j, &env); err != nil {
		return err
	}
	gv, _ := schema.ParseGroupVersion(env.APIVersion)
	*tm = metav1.TypeMeta{APIVersion: gv.Group + "/v1", Kind: env.Kind}
	*om = env.Metadata
	if len(env.Spec) == 0 || string(env.Spec) == "null" {
		return nil
	}
	if err := checkSpec(protov1.MessageReflect(spec).Descriptor(), env.Spec); err != nil {
		return err
	}
	// jsonpb rather than protojson: it is what Istio itself decodes with, and it
	// accepts Go durations such as "1m" or "500ms" where protojson wants "60s".
	u := jsonpb.Unmarshaler{AllowUnknownFields: false}
	if err := u.Unmarshal(bytes.NewReader(env.Spec), spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}
