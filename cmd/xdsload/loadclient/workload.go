package loadclient

import (
	"fmt"
	"hash/fnv"
)

// Workload is the Deployment a simulated sidecar belongs to, as a real pod's
// labels and name show it.
type Workload struct {
	// Index is w: proxy i belongs to workload i mod Config.Workloads.
	Index int
	// Name is the Deployment's name and its app label: "<prefix>-<w>".
	Name string
	// Namespace is where the Deployment lives (Config.Namespaces spread).
	Namespace string
	// Version is its version label: v1 for even w, v2 for odd w (the mesh's
	// DestinationRules define both subsets).
	Version string
	// PodTemplateHash is the pod-template-hash label of its one ReplicaSet:
	// 10 characters of Kubernetes' safe alphabet, derived from name and namespace.
	PodTemplateHash string
}

// NamespaceNames returns the n namespaces the workloads are spread over:
// base, base-1, …, base-(n-1).
func NamespaceNames(base string, n int) []string {
	out := []string{base}
	for k := 1; k < n; k++ {
		out = append(out, fmt.Sprintf("%s-%d", base, k))
	}
	return out
}

// WorkloadOf returns workload w of a fleet whose workloads are named
// "<prefix>-<w>" and spread over namespaces (NamespaceNames) by w mod len.
func WorkloadOf(prefix string, w int, namespaces []string) Workload {
	name := fmt.Sprintf("%s-%d", prefix, w)
	ns := namespaces[w%len(namespaces)]
	version := "v1"
	if w%2 == 1 {
		version = "v2"
	}
	h := fnv.New64a()
	h.Write([]byte(ns + "/" + name))
	return Workload{Index: w, Name: name, Namespace: ns, Version: version, PodTemplateHash: safeEncode(h.Sum64(), 10)}
}

// Labels returns the labels a pod of the workload carries once injected, as
// pilot-agent forwards them in the LABELS node metadata.
func (w Workload) Labels() map[string]string {
	return map[string]string{
		"app":                                 w.Name,
		"version":                             w.Version,
		"pod-template-hash":                   w.PodTemplateHash,
		"security.istio.io/tlsMode":           "istio",
		"service.istio.io/canonical-name":     w.Name,
		"service.istio.io/canonical-revision": w.Version,
	}
}

// PodName is the name of replica i of the workload: "<name>-<hash>-<5 chars>",
// as a ReplicaSet names its pods.
func (w Workload) PodName(i int) string {
	return fmt.Sprintf("%s-%s-%s", w.Name, w.PodTemplateHash, safeEncode(uint64(i)*2654435761+12345, 5))
}

// safeEncode writes n characters of Kubernetes' rand.SafeEncodeString alphabet
// (no vowels, no confusable digits) from v.
func safeEncode(v uint64, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for k := range b {
		b[k] = alphabet[v%uint64(len(alphabet))]
		v /= uint64(len(alphabet))
	}
	return string(b)
}
