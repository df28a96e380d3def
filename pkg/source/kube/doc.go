// Package kube is the Kubernetes config source: shared informers on a real
// cluster feeding the same model.Inputs as the file source.
package kube

import (
	// Pinned here until the informers land, so go.mod carries client-go.
	_ "istio.io/client-go/pkg/clientset/versioned"
	_ "k8s.io/client-go/dynamic/dynamicinformer"
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/kubernetes"
)
