package analyze

import (
	"reflect"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// eachObject calls f for every object of the inputs with its kind. It walks
// model.Inputs by reflection, so a kind added there is analyzed (annotations,
// discovery selection) without anyone remembering to add it here: every field
// is a slice of pointers to Kubernetes objects, the kind the element's name.
func eachObject(in *model.Inputs, f func(kind string, obj metav1.Object)) {
	v := reflect.ValueOf(in).Elem()
	for i := 0; i < v.NumField(); i++ {
		fv := v.Field(i)
		if fv.Kind() != reflect.Slice || fv.Type().Elem().Kind() != reflect.Pointer {
			continue
		}
		kind := fv.Type().Elem().Elem().Name()
		for j := 0; j < fv.Len(); j++ {
			if fv.Index(j).IsNil() {
				continue
			}
			if pm, ok := fv.Index(j).Interface().(*metav1.PartialObjectMetadata); ok {
				f(pm.Kind, pm) // Inputs.Unimplemented: many kinds, named by TypeMeta
				continue
			}
			if obj, ok := fv.Index(j).Interface().(metav1.Object); ok {
				f(kind, obj)
			}
		}
	}
}

// namespacesOf lists every namespace the inputs mention, sorted.
func namespacesOf(in *model.Inputs) []string {
	seen := map[string]bool{}
	eachObject(in, func(kind string, obj metav1.Object) {
		if kind == "Namespace" {
			seen[obj.GetName()] = true
		} else if obj.GetNamespace() != "" {
			seen[obj.GetNamespace()] = true
		}
	})
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// inScope is a copy of in without the objects of the namespaces outside, as
// the Kubernetes source leaves them out under discovery selectors.
func inScope(in *model.Inputs, outside map[string]bool) *model.Inputs {
	out := &model.Inputs{}
	src, dst := reflect.ValueOf(in).Elem(), reflect.ValueOf(out).Elem()
	for i := 0; i < src.NumField(); i++ {
		fv := src.Field(i)
		if fv.Kind() != reflect.Slice || fv.Type().Elem().Kind() != reflect.Pointer {
			dst.Field(i).Set(fv)
			continue
		}
		kept := reflect.MakeSlice(fv.Type(), 0, fv.Len())
		for j := 0; j < fv.Len(); j++ {
			obj, ok := fv.Index(j).Interface().(metav1.Object)
			if ok && !fv.Index(j).IsNil() {
				ns := obj.GetNamespace()
				if _, isNS := obj.(*corev1.Namespace); isNS {
					ns = obj.GetName()
				}
				if outside[ns] {
					continue
				}
			}
			kept = reflect.Append(kept, fv.Index(j))
		}
		dst.Field(i).Set(kept)
	}
	return out
}

// podTemplate is a workload as a manifest describes it: a Pod, or the pod
// template of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Job.
type podTemplate struct {
	namespace, name string // name: the Pod's, or "<Kind>/<name>"
	spec            *corev1.PodTemplateSpec
}

func podTemplates(in *model.Inputs) []podTemplate {
	var out []podTemplate
	add := func(kind string, m metav1.ObjectMeta, t *corev1.PodTemplateSpec) {
		out = append(out, podTemplate{namespace: m.Namespace, name: kind + "/" + m.Name, spec: t})
	}
	for _, p := range in.Pods {
		out = append(out, podTemplate{namespace: p.Namespace, name: p.Name, spec: &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}})
	}
	for _, o := range in.Deployments {
		add("Deployment", o.ObjectMeta, &o.Spec.Template)
	}
	for _, o := range in.StatefulSets {
		add("StatefulSet", o.ObjectMeta, &o.Spec.Template)
	}
	for _, o := range in.DaemonSets {
		add("DaemonSet", o.ObjectMeta, &o.Spec.Template)
	}
	for _, o := range in.ReplicaSets {
		add("ReplicaSet", o.ObjectMeta, &o.Spec.Template)
	}
	for _, o := range in.Jobs {
		add("Job", o.ObjectMeta, &o.Spec.Template)
	}
	return out
}
