// Package analyze finds what is wrong with a mesh's config, for `mizzen analyze`:
// the model's own checks (every object mizzen skipped or applied with a warning)
// plus cross-object checks that only make sense looking at the whole mesh.
// Each finding carries the ID of Istio's analyzer message for the same problem
// (IST0101 …) or a mizzen one (MZ0001 …), and a hint how to fix it.
package analyze

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Finding is one problem: the object and field, what is wrong, its message
// ID and how to fix it.
type Finding struct {
	model.ConfigError
	ID   string
	Hint string
}

// NewFinding classifies a problem found outside the model (a file that does
// not parse, an object the Kubernetes source could not decode).
func NewFinding(e model.ConfigError) Finding {
	id, hint := classify(e.Code, e.Warning)
	return Finding{ConfigError: e, ID: id, Hint: hint}
}

// Level is "Error" (mizzen skips the object) or "Warning" (applied, with a
// caveat), as istioctl prints them.
func (f Finding) Level() string {
	if f.Warning {
		return "Warning"
	}
	return "Error"
}

// String is the text form: istioctl's `Level [ID] (Kind ns/name) message`,
// plus the field, mizzen's code and the hint.
func (f Finding) String() string {
	obj := f.Kind
	if f.Name != "" {
		obj += " " + f.Namespace + "/" + f.Name
	}
	if f.Field != "" {
		obj += " " + f.Field
	}
	s := fmt.Sprintf("%s [%s %s] (%s) %s", f.Level(), f.ID, f.Code, obj, f.Message)
	if f.Hint != "" {
		s += "\n    Fix: " + f.Hint
	}
	return s
}

// Options tune Analyze.
type Options struct {
	// DiscoverySelectors are `mizzen serve --discovery-selectors`: only
	// namespaces whose labels match one of them (and the root namespace) are
	// in scope. None means every namespace.
	DiscoverySelectors []metav1.LabelSelector
}

// Analyze checks the inputs as `mizzen serve` would read them (with the same
// discovery selection) and returns every problem, errors first, then by object.
func Analyze(in *model.Inputs, opts Options) ([]Finding, error) {
	full := model.Build(in, 1)
	snap := full
	var outside map[string]bool // namespaces discovery selection leaves out
	if len(opts.DiscoverySelectors) > 0 {
		var err error
		outside, err = namespacesOutside(in, full.Mesh.GetRootNamespace(), opts.DiscoverySelectors)
		if err != nil {
			return nil, err
		}
		if len(outside) > 0 {
			snap = model.Build(inScope(in, outside), 1)
		}
	}
	a := &analysis{snap: snap, full: full, outside: outside}
	for _, e := range snap.Errors {
		a.add(NewFinding(e))
	}
	a.destinationPorts()
	a.hostsOutsideDiscovery()
	a.virtualServicesOutsideDiscovery()
	a.gatewaysReferenced()
	a.gatewaysSelectWorkloads()
	a.gatewayCredentials()
	a.destinationRuleHosts()
	a.subsetsMatchEndpoints()
	a.virtualServiceVisibility()
	a.pathPatterns()
	a.authzPaths()
	a.annotations()
	a.serverCertVerification()
	a.meshConfig()
	a.principalsWithoutMTLS()
	a.sniffedHTTPRoutes()
	return a.result(), nil
}

// analysis collects findings; a check that explains a problem better than
// the model replaces the model's finding for the same object, field and code.
type analysis struct {
	snap, full *model.Snapshot
	outside    map[string]bool
	findings   []Finding
	// index finds an earlier finding for the same object, field and code; a
	// linear search made analyzing 20,000 VirtualServices take minutes.
	index map[findingKey]int
}

type findingKey struct{ kind, namespace, name, field, code string }

func (a *analysis) add(f Finding) {
	k := findingKey{f.Kind, f.Namespace, f.Name, f.Field, f.Code}
	if i, ok := a.index[k]; ok {
		a.findings[i] = f
		return
	}
	if a.index == nil {
		a.index = map[findingKey]int{}
	}
	a.index[k] = len(a.findings)
	a.findings = append(a.findings, f)
}

// warn adds a warning with its own hint.
func (a *analysis) warn(kind, ns, name, field, code, msg, hint string) {
	id, generic := classify(code, true)
	if hint == "" {
		hint = generic
	}
	a.add(Finding{ConfigError: model.ConfigError{Kind: kind, Namespace: ns, Name: name, Field: field, Code: code, Message: msg, Warning: true}, ID: id, Hint: hint})
}

func (a *analysis) result() []Finding {
	out := a.findings
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Warning != out[j].Warning {
			return !out[i].Warning
		}
		return key(out[i]) < key(out[j])
	})
	return out
}

func key(f Finding) string {
	return f.Kind + "/" + f.Namespace + "/" + f.Name + "/" + f.Field + "/" + f.Code
}

// namespacesOutside lists the namespaces (of objects in in) that the
// selectors leave out; the root namespace is always in, as for istiod.
func namespacesOutside(in *model.Inputs, root string, sels []metav1.LabelSelector) (map[string]bool, error) {
	var selectors []labels.Selector
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(&sels[i])
		if err != nil {
			return nil, fmt.Errorf("discovery selector %d: %w", i, err)
		}
		selectors = append(selectors, s)
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range in.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	out := map[string]bool{}
	for _, ns := range namespacesOf(in) {
		if ns == root || ns == "" {
			continue
		}
		in := false
		for _, s := range selectors {
			in = in || s.Matches(labels.Set(nsLabels[ns]))
		}
		if !in {
			out[ns] = true
		}
	}
	return out, nil
}

// joinPorts lists a service's ports as "9080/http, 9090/grpc".
func joinPorts(svc *model.Service) string {
	var ps []string
	for _, p := range svc.Ports {
		ps = append(ps, fmt.Sprintf("%d/%s", p.Port, p.Name))
	}
	if len(ps) == 0 {
		return "none"
	}
	return strings.Join(ps, ", ")
}
