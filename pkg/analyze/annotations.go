package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mizzenmesh/mizzen/pkg/textdist"
	"istio.io/api/annotation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// annotations: an Istio annotation (any key under an istio.io domain) that
// Istio does not define is most often a typo, and silently does nothing; a
// known one on a kind of object that does not read it does nothing either.
// The list is istio.io/api's, the one istioctl checks against.
func (a *analysis) annotations() {
	known := map[string]*annotation.Instance{}
	var names []string
	for _, an := range annotation.AllResourceAnnotations() {
		known[an.Name] = an
		names = append(names, an.Name)
	}
	eachObject(a.snap.Inputs, func(kind string, obj metav1.Object) {
		keys := make([]string, 0, len(obj.GetAnnotations()))
		for k := range obj.GetAnnotations() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			domain, _, ok := strings.Cut(k, "/")
			if !ok || (domain != "istio.io" && !strings.HasSuffix(domain, ".istio.io")) {
				continue
			}
			field := "metadata.annotations[" + k + "]"
			an := known[k]
			if an == nil {
				hint := "check the spelling; nothing reads this annotation"
				if s := closest(k, names); s != "" {
					hint = fmt.Sprintf("did you mean %s?", s)
				}
				a.warn(kind, obj.GetNamespace(), obj.GetName(), field, "UnknownAnnotation",
					fmt.Sprintf("unknown annotation %s: neither Istio nor mizzen reads it", k), hint)
				continue
			}
			var kinds []string
			fits := false
			for _, r := range an.Resources {
				kinds = append(kinds, r.String())
				fits = fits || r == annotation.Any || r.String() == kind
			}
			if !fits && len(kinds) > 0 {
				a.warn(kind, obj.GetNamespace(), obj.GetName(), field, "MisplacedAnnotation",
					fmt.Sprintf("annotation %s applies to %s only; on a %s it does nothing", k, strings.Join(kinds, ", "), kind), "")
			}
		}
	})
}

// closest returns the known name within edit distance 3 of s, if one is.
func closest(s string, names []string) string {
	best, bestD := "", 4
	for _, n := range names {
		if d := textdist.Levenshtein(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}
