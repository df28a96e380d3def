package model

import (
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Inputs is everything a source hands to the model: the raw objects, exactly as a
// cluster or a YAML directory holds them. Both the file source and the Kubernetes
// source fill this same struct, so nothing downstream knows where config came from.
//
// Istio objects of every served version (v1alpha3, v1beta1, v1) arrive here as
// their v1 client-go type: the specs are the same proto messages in all versions.
type Inputs struct {
	Namespaces     []*corev1.Namespace
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	// Nodes are read for their locality labels (locality.go).
	Nodes           []*corev1.Node
	ServiceAccounts []*corev1.ServiceAccount
	// ConfigMaps holds only the mesh ConfigMap (`istio` in the root namespace) for now.
	ConfigMaps []*corev1.ConfigMap
	// Secrets holds only possible gateway credentials (model.IsCredentialSecret):
	// TLS or Opaque Secrets with certificate keys, named by Gateway servers'
	// tls.credentialName.
	Secrets []*corev1.Secret

	VirtualServices  []*networking.VirtualService
	DestinationRules []*networking.DestinationRule
	Gateways         []*networking.Gateway
	ServiceEntries   []*networking.ServiceEntry
	Sidecars         []*networking.Sidecar

	PeerAuthentications    []*security.PeerAuthentication
	AuthorizationPolicies  []*security.AuthorizationPolicy
	RequestAuthentications []*security.RequestAuthentication

	// Workload controllers, read from files only (pkg/source/file): their pod
	// templates are workloads for the analyzer before any Pod runs. The
	// model does not translate them.
	Deployments  []*appsv1.Deployment
	StatefulSets []*appsv1.StatefulSet
	DaemonSets   []*appsv1.DaemonSet
	ReplicaSets  []*appsv1.ReplicaSet
	Jobs         []*batchv1.Job

	// Unimplemented are objects of Istio and Gateway API kinds mizzen does not
	// implement (EnvoyFilter, Telemetry, WorkloadEntry, HTTPRoute, …), by name
	// only (TypeMeta says the kind): the model reports each as not applied.
	Unimplemented []*metav1.PartialObjectMetadata

	// Hashes, when set, caches objects' fingerprints across builds (a source
	// that rebuilds its inputs on every change passes the same one each time).
	Hashes *HashCache
}
