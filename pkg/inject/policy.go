package inject

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Labels and annotations the injector reads or writes, named as in Istio.
const (
	// LabelInject / AnnotationInject on a pod: "true" asks for a sidecar,
	// "false" refuses one. The label wins over the annotation, as in Istio.
	LabelInject      = "sidecar.istio.io/inject"
	AnnotationInject = "sidecar.istio.io/inject"
	// LabelNamespaceInjection=enabled on a namespace turns injection on for
	// its pods, "disabled" off even for pods that ask.
	LabelNamespaceInjection = "istio-injection"
	// LabelRevision on a namespace turns injection on too when it names the
	// injector's revision (Config.Revision, "default"), as in Istio.
	LabelRevision = "istio.io/rev"

	AnnotationStatus           = "sidecar.istio.io/status"
	AnnotationProxyCPU         = "sidecar.istio.io/proxyCPU"
	AnnotationProxyMemory      = "sidecar.istio.io/proxyMemory"
	AnnotationProxyCPULimit    = "sidecar.istio.io/proxyCPULimit"
	AnnotationProxyMemoryLimit = "sidecar.istio.io/proxyMemoryLimit"
	AnnotationProxyImage       = "sidecar.istio.io/proxyImage"
	AnnotationLogLevel         = "sidecar.istio.io/logLevel"
	AnnotationTemplates        = "inject.istio.io/templates"

	AnnotationIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationExcludeOutboundPorts    = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationIncludeInboundPorts     = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInboundPorts     = "traffic.sidecar.istio.io/excludeInboundPorts"

	AnnotationPrometheusScrape = "prometheus.io/scrape"
	AnnotationPrometheusPort   = "prometheus.io/port"
	AnnotationPrometheusPath   = "prometheus.io/path"
	AnnotationDefaultContainer = "kubectl.kubernetes.io/default-container"
	AnnotationDefaultLogs      = "kubectl.kubernetes.io/default-logs-container"

	LabelTLSMode           = "security.istio.io/tlsMode"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
)

// ignoredNamespaces never get sidecars: the cluster's own components.
var ignoredNamespaces = []string{metav1.NamespaceSystem, metav1.NamespacePublic, "kube-node-lease"}

// Decision is whether a pod gets a sidecar, and why (for logs and the
// admission response).
type Decision struct {
	Inject bool
	Reason string
}

// Required decides as Istio's injector does, with the namespace's labels
// checked here too (not only by the webhook configuration's selectors), so the
// webhook and `mizzen inject` decide the same way:
//
//  1. hostNetwork pods, pods of kube-system/kube-public/kube-node-lease and
//     pods that already have a sidecar: no;
//  2. a namespace labelled istio-injection=disabled: no;
//  3. the pod's sidecar.istio.io/inject label, else its annotation: "true"
//     (y, yes, on) yes, anything else no;
//  4. a namespace without istio-injection=enabled or istio.io/rev=<revision>,
//     and a pod without istio.io/rev=<revision>: no;
//  5. neverInjectSelector matching the pod's labels: no; alwaysInjectSelector:
//     yes; else the policy (enabled: yes).
func Required(cfg *Config, nsLabels map[string]string, pod *corev1.Pod, namespace string) Decision {
	if pod.Spec.HostNetwork {
		return Decision{false, "hostNetwork pod: capture would take over the node's network"}
	}
	if slices.Contains(ignoredNamespaces, namespace) {
		return Decision{false, "namespace " + namespace + " is never injected"}
	}
	if Injected(pod) {
		return Decision{false, "already injected"}
	}
	if nsLabels[LabelNamespaceInjection] == "disabled" {
		return Decision{false, "namespace label istio-injection=disabled"}
	}
	explicit, source := "", ""
	if v, ok := pod.Labels[LabelInject]; ok {
		explicit, source = v, "label"
	} else if v, ok := pod.Annotations[AnnotationInject]; ok {
		explicit, source = v, "annotation"
	}
	if source != "" {
		if truthy(explicit) {
			return Decision{true, "pod " + source + " " + LabelInject + "=" + explicit}
		}
		return Decision{false, "pod " + source + " " + LabelInject + "=" + explicit}
	}
	// A pod labelled with the injector's revision opts in like a namespace
	// so labelled (Istio's chart selects such pods with an object selector),
	// unless its namespace names another injector.
	podRev := cfg.Revision != "" && pod.Labels[LabelRevision] == cfg.Revision && nsLabels[LabelNamespaceInjection] == "" &&
		(nsLabels[LabelRevision] == "" || nsLabels[LabelRevision] == cfg.Revision)
	if nsLabels[LabelNamespaceInjection] != "enabled" && (cfg.Revision == "" || nsLabels[LabelRevision] != cfg.Revision) && !podRev {
		return Decision{false, "neither the namespace (istio-injection=enabled or istio.io/rev=" + cfg.Revision + ") nor the pod (istio.io/rev) asks for this injector"}
	}
	if selectorsMatch(cfg.NeverInjectSelector, pod.Labels) {
		return Decision{false, "pod labels match neverInjectSelector"}
	}
	if selectorsMatch(cfg.AlwaysInjectSelector, pod.Labels) {
		return Decision{true, "pod labels match alwaysInjectSelector"}
	}
	if cfg.Policy == PolicyDisabled {
		return Decision{false, "policy disabled and the pod does not ask for a sidecar"}
	}
	return Decision{true, "namespace injection enabled"}
}

// Injected reports whether the pod already has mizzen's (or Istio's) sidecar:
// the status annotation, or istio-init or istio-proxy among its init
// containers. A container named istio-proxy among the pod's own containers is
// not one: with Istio's templates it customises the injected proxy (Istio's
// gateway Deployments say `image: auto` there and are injected).
func Injected(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[AnnotationStatus]; ok {
		return true
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == ProxyContainerName || c.Name == InitContainerName {
			return true
		}
	}
	return false
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "on":
		return true
	}
	return false
}

func selectorsMatch(sels []metav1.LabelSelector, podLabels map[string]string) bool {
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(&sels[i])
		if err != nil || s.Empty() {
			continue // checked when the config was read; an empty one selects nothing here
		}
		if s.Matches(labels.Set(podLabels)) {
			return true
		}
	}
	return false
}
