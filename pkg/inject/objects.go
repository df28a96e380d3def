package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// offlineNamespaceLabels are what `mizzen inject` assumes of the namespace
// (it has no cluster to ask): injection enabled, as istioctl kube-inject does.
// Pods still opt out with sidecar.istio.io/inject: "false".
func offlineNamespaceLabels() map[string]string {
	return map[string]string{LabelNamespaceInjection: "enabled"}
}

// Result says what happened to one object of a file.
type Result struct {
	Kind, Namespace, Name string
	Decision              Decision
	// Notes are what injection could not apply as asked (see InjectNotes).
	Notes []string
}

// InjectYAML is `mizzen inject`: it reads multi-document YAML (or JSON),
// adds the sidecar to the pod template of every Pod, Deployment, StatefulSet,
// DaemonSet, ReplicaSet, ReplicationController, Job and CronJob (also inside
// a List) that Required says should get one, and writes every document to w:
// injected ones re-rendered, all others exactly as they were.
func InjectYAML(in io.Reader, cfg *Config, w io.Writer) ([]Result, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var results []Result
	first := true
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return results, nil
		}
		if err != nil {
			return results, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		out, res, err := injectDocument(raw, cfg)
		if err != nil {
			return results, fmt.Errorf("document %d: %w", doc, err)
		}
		results = append(results, res...)
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return results, err
			}
		}
		first = false
		if _, err := w.Write(append(bytes.TrimRight(out, "\n"), '\n')); err != nil {
			return results, err
		}
	}
}

// stripComments drops comment-only lines, to tell empty documents.
func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}

type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Items      []json.RawMessage `json:"items"`
}

// injectDocument returns the document to print: raw itself unless something
// in it was injected.
func injectDocument(raw []byte, cfg *Config) ([]byte, []Result, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, nil, err
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil || h.Kind == "" {
		return raw, nil, nil // not a Kubernetes object: not ours to judge
	}
	if h.Kind == "List" || strings.HasSuffix(h.Kind, "List") && h.Items != nil {
		var list map[string]any
		if err := json.Unmarshal(js, &list); err != nil {
			return nil, nil, err
		}
		var results []Result
		changed := false
		items := make([]any, len(h.Items))
		for i, item := range h.Items {
			out, res, err := injectObject(item, cfg)
			if err != nil {
				return nil, nil, fmt.Errorf("items[%d]: %w", i, err)
			}
			results = append(results, res...)
			if out == nil {
				out = item
			} else {
				changed = true
			}
			var v any
			if err := json.Unmarshal(out, &v); err != nil {
				return nil, nil, err
			}
			items[i] = v
		}
		if !changed {
			return raw, results, nil
		}
		list["items"] = items
		b, err := yaml.Marshal(list)
		return b, results, err
	}
	out, res, err := injectObject(js, cfg)
	if err != nil || out == nil {
		return raw, res, err
	}
	b, err := yaml.JSONToYAML(out)
	return b, res, err
}

// injectObject injects one object's pod template. It returns nil JSON when
// the object is left as it is.
func injectObject(js []byte, cfg *Config) ([]byte, []Result, error) {
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, nil, err
	}
	var (
		obj  any
		meta *metav1.ObjectMeta
		tmpl func() (*metav1.ObjectMeta, *corev1.PodSpec)
	)
	switch h.APIVersion + "/" + h.Kind {
	case "v1/Pod":
		o := &corev1.Pod{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) { return &o.ObjectMeta, &o.Spec }
	case "v1/ReplicationController":
		o := &corev1.ReplicationController{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			if o.Spec.Template == nil {
				return nil, nil
			}
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "apps/v1/Deployment":
		o := &appsv1.Deployment{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "apps/v1/StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "apps/v1/DaemonSet":
		o := &appsv1.DaemonSet{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "apps/v1/ReplicaSet":
		o := &appsv1.ReplicaSet{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "batch/v1/Job":
		o := &batchv1.Job{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "batch/v1/CronJob":
		o := &batchv1.CronJob{}
		obj, meta, tmpl = o, &o.ObjectMeta, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
		}
	default:
		return nil, nil, nil
	}
	// Strictly: an unknown field would otherwise vanish from the output.
	if err := yaml.UnmarshalStrict(js, obj); err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", h.Kind, h.Metadata.Name, err)
	}
	ns := meta.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	res := Result{Kind: h.Kind, Namespace: ns, Name: meta.Name}
	tm, spec := tmpl()
	if spec == nil {
		res.Decision = Decision{false, "no pod template"}
		return nil, []Result{res}, nil
	}
	pod := &corev1.Pod{ObjectMeta: *tm, Spec: *spec}
	if h.Kind != "Pod" {
		pod.Namespace = "" // a template's metadata is the pod's, but its namespace is the workload's
	}
	res.Decision = Required(cfg, offlineNamespaceLabels(), pod, ns)
	if !res.Decision.Inject {
		return nil, []Result{res}, nil
	}
	params := Params{Namespace: ns, WorkloadName: meta.Name}
	if h.Kind != "Pod" {
		params.WorkloadKind, params.WorkloadAPIVersion, params.WorkloadNamespace = h.Kind, h.APIVersion, meta.Namespace
	}
	notes, err := InjectNotes(pod, cfg, params)
	if err != nil {
		return nil, nil, err
	}
	res.Notes = notes
	if h.Kind != "Pod" {
		pod.Namespace = tm.Namespace
	}
	*tm, *spec = pod.ObjectMeta, pod.Spec
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	out, err = tidy(out)
	return out, []Result{res}, err
}

// tidy drops what marshalling a typed object adds and nobody wrote:
// `creationTimestamp: null` (also in templates) and an empty `status`.
func tidy(js []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			if md, ok := t["metadata"].(map[string]any); ok {
				if ts, ok := md["creationTimestamp"]; ok && ts == nil {
					delete(md, "creationTimestamp")
				}
			}
			for _, c := range t {
				walk(c)
			}
		case []any:
			for _, c := range t {
				walk(c)
			}
		}
	}
	walk(m)
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	return json.Marshal(m)
}
