package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// templateFuncs are the functions Istio's injection templates may call:
// sprig's generic ones (as istiod offers them), then Istio's own, which
// take precedence where the names clash (contains, indent, omit, toYaml), as
// in istiod. Each of Istio's is written from its documented behaviour.
//
// A function that cannot do its job (bad JSON, say) returns what Istio's
// returns then ("{}", the input unchanged) and records a warning in w: istiod
// only logs those, mizzen puts them in the injection's result and `analyze`.
func templateFuncs(w *warnings) template.FuncMap {
	f := sprig.TxtFuncMap()
	istio := template.FuncMap{
		"annotation":             annotationOr2,
		"isset":                  func(m map[string]string, k string) bool { _, ok := m[k]; return ok },
		"valueOrDefault":         valueOrDefault,
		"toJSON":                 func(m map[string]string) string { return w.toJSON(m) },
		"fromJSON":               func(s string) any { return w.fromJSON(s) },
		"structToJSON":           func(v any) string { return w.structToJSON(v) },
		"protoToJSON":            func(m proto.Message) string { return w.protoToJSON(m) },
		"toYaml":                 func(v any) string { return w.toYaml(v) },
		"indent":                 indentAfterFirst,
		"directory":              func(p string) string { d, _ := path.Split(p); return d },
		"contains":               func(needle, haystack string) bool { return strings.Contains(haystack, needle) },
		"toLower":                strings.ToLower,
		"appendMultusNetwork":    func(cur, network string) string { return w.appendMultusNetwork(cur, network) },
		"env":                    envOr,
		"omit":                   omitKeys,
		"strdict":                strdict,
		"toJsonMap":              func(ms ...map[string]string) string { return w.structToJSON(mergeMaps(ms...)) },
		"mergeMaps":              mergeMaps,
		"omitNil":                omitNil,
		"formatDuration":         func(d *durationpb.Duration) string { return d.AsDuration().String() },
		"excludeInboundPort":     excludeInboundPort,
		"includeInboundPorts":    func(cs []corev1.Container) string { return containerPorts(cs, true) },
		"applicationPorts":       func(cs []corev1.Container) string { return containerPorts(cs, false) },
		"kubevirtInterfaces":     func(s string) string { return s },
		"excludeInterfaces":      func(s string) string { return s },
		"otelResourceAttributes": otelResourceAttributes,
	}
	for k, v := range istio {
		f[k] = v
	}
	return f
}

// warnings collects what template functions could not do.
type warnings struct{ list []string }

func (w *warnings) add(format string, args ...any) {
	if w != nil {
		w.list = append(w.list, fmt.Sprintf(format, args...))
	}
}

// annotationOr2 is the template's `annotation meta name default`: the pod's
// annotation when set (even empty), else the default printed with %v.
func annotationOr2(meta metav1.ObjectMeta, name string, def any) string {
	if v, ok := meta.Annotations[name]; ok {
		return v
	}
	return fmt.Sprint(def)
}

func valueOrDefault(v, def any) any {
	if v == nil || v == "" {
		return def
	}
	return v
}

func (w *warnings) toJSON(m map[string]string) string {
	if m == nil {
		return "{}"
	}
	return w.structToJSON(m)
}

func (w *warnings) fromJSON(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		w.add("fromJSON: %q is not JSON: %v", s, err)
		return "{}"
	}
	return v
}

func (w *warnings) structToJSON(v any) string {
	if v == nil {
		return "{}"
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.add("structToJSON: %v", err)
		return "{}"
	}
	return string(b)
}

func (w *warnings) toYaml(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		w.add("toYaml: %v", err)
		return ""
	}
	return string(b)
}

// protoToJSON prints the proxy config for the agent's PROXY_CONFIG, leaving
// out what equals Istio's defaults (the agent fills those in itself), in the
// compact camelCase JSON istiod writes.
func (w *warnings) protoToJSON(m proto.Message) string {
	if pc, ok := m.(*meshv1alpha1.ProxyConfig); ok {
		m = withoutProxyDefaults(pc)
	}
	if m == nil {
		return "{}"
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		w.add("protoToJSON: %v", err)
		return "{}"
	}
	// protojson's spacing is deliberately unstable; compact it.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// indentAfterFirst is Istio's indent: every line but the first gets n spaces
// (the template writes the first line's indentation itself).
func indentAfterFirst(n int, s string) string {
	lines := strings.Split(s, "\n")
	for i := 1; i < len(lines); i++ {
		lines[i] = strings.Repeat(" ", n) + lines[i]
	}
	return strings.Join(lines, "\n")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func omitKeys(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// strdict is sprig's dict with string values (for labels and annotations);
// a key without a value maps to "".
func strdict(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		if i+1 < len(kv) {
			out[kv[i]] = kv[i+1]
		} else {
			out[kv[i]] = ""
		}
	}
	return out
}

// mergeMaps merges maps, later ones winning; nil for no maps.
func mergeMaps(ms ...map[string]string) map[string]string {
	if len(ms) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// omitNil drops nil values from maps and lists, recursively; a map or list
// left empty that way becomes nil too.
func omitNil(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if !hasNil(t) {
			return t
		}
		out := map[string]any{}
		for k, e := range t {
			if e = omitNil(e); e != nil {
				out[k] = e
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if !hasNil(t) {
			return t
		}
		var out []any
		for _, e := range t {
			if e = omitNil(e); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return v
}

func hasNil(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range t {
			if hasNil(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if hasNil(e) {
				return true
			}
		}
	}
	return false
}

// excludeInboundPort adds port (the agent's status port) to a comma
// separated list unless it is already there or is empty/0.
func excludeInboundPort(port any, list string) string {
	p := strings.TrimSpace(fmt.Sprint(port))
	if p == "" || p == "0" {
		return list
	}
	var out []string
	for _, e := range strings.Split(list, ",") {
		if e == p {
			return list
		}
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return strings.Join(append(out, p), ",")
}

// containerPorts lists the TCP container ports (UDP and SCTP are never
// captured), of every container or only of the application's.
func containerPorts(cs []corev1.Container, withProxy bool) string {
	var out []string
	for _, c := range cs {
		if !withProxy && c.Name == ProxyContainerName {
			continue
		}
		for _, p := range c.Ports {
			if p.Protocol == corev1.ProtocolUDP || p.Protocol == corev1.ProtocolSCTP {
				continue
			}
			out = append(out, strconv.Itoa(int(p.ContainerPort)))
		}
	}
	return strings.Join(out, ",")
}

// appendMultusNetwork adds the istio-cni network to a pod's Multus
// networks annotation, which is either a comma separated list of
// [namespace/]name or a JSON list of {name, namespace}; it is left alone when
// the network is already there.
func (w *warnings) appendMultusNetwork(cur, network string) string {
	if cur == "" {
		return network
	}
	i := strings.LastIndex(cur, "]")
	if i < 0 {
		for _, n := range strings.Split(cur, ",") {
			if strings.TrimSpace(n) == network {
				return cur
			}
		}
		return cur + ", " + network
	}
	var nets []map[string]any
	if err := json.Unmarshal([]byte(cur), &nets); err != nil {
		w.add("appendMultusNetwork: k8s.v1.cni.cncf.io/networks is not a JSON list: %v", err)
		return cur
	}
	ns, name := "", network
	if a, b, ok := strings.Cut(network, "/"); ok {
		ns, name = a, b
	}
	for _, n := range nets {
		if n["name"] == name {
			got, _ := n["namespace"].(string)
			if got == ns {
				return cur
			}
		}
	}
	add := fmt.Sprintf(`, {"name": "%s"}`, name)
	if ns != "" {
		add = fmt.Sprintf(`, {"name": "%s", "namespace": "%s"}`, name, ns)
	}
	return cur[:i] + add + cur[i:]
}

// otelResourceAttributes is OTEL_RESOURCE_ATTRIBUTES for the proxy when an
// OpenTelemetry extension provider asks for OTel's semantic conventions:
// service.namespace, service.version and service.instance.id from the
// resource.opentelemetry.io/* annotations, else from the namespace, the
// app.kubernetes.io/version label or the only container's image tag, and
// <namespace>.$(POD_NAME).<first container>. Empty otherwise.
func otelResourceAttributes(mc *meshv1alpha1.MeshConfig, ann, labels map[string]string, namespace string, cs []corev1.Container) string {
	on := false
	for _, p := range mc.GetExtensionProviders() {
		if p.GetOpentelemetry().GetServiceAttributeEnrichment() == meshv1alpha1.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS {
			on = true
			break
		}
	}
	if !on {
		return ""
	}
	const pre = "resource.opentelemetry.io/"
	var attrs []string
	switch {
	case ann[pre+"service.namespace"] != "":
		attrs = append(attrs, "service.namespace="+ann[pre+"service.namespace"])
	case namespace != "":
		attrs = append(attrs, "service.namespace="+namespace)
	}
	switch {
	case ann[pre+"service.version"] != "":
		attrs = append(attrs, "service.version="+ann[pre+"service.version"])
	case labels["app.kubernetes.io/version"] != "":
		attrs = append(attrs, "service.version="+labels["app.kubernetes.io/version"])
	case len(cs) == 1:
		img, digest, _ := strings.Cut(cs[0].Image, "@")
		tag := ""
		if c := strings.LastIndex(img, ":"); c > strings.LastIndex(img, "/") {
			tag = img[c+1:]
		}
		switch {
		case tag != "" && digest != "":
			attrs = append(attrs, "service.version="+tag+"@"+digest)
		case digest != "":
			attrs = append(attrs, "service.version="+digest)
		case tag != "":
			attrs = append(attrs, "service.version="+tag)
		}
	}
	switch {
	case ann[pre+"service.instance.id"] != "":
		attrs = append(attrs, "service.instance.id="+ann[pre+"service.instance.id"])
	case len(cs) > 0:
		attrs = append(attrs, "service.instance.id="+namespace+".$(POD_NAME)."+cs[0].Name)
	}
	return strings.Join(attrs, ",")
}
