package rig

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const rigWorld = `
apiVersion: v1
kind: Namespace
metadata:
  name: rigtest
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: rigtest
spec:
  ports:
  - name: http
    port: 80
    targetPort: 8080
  selector:
    app: web
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: rigtest
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses: ["10.1.0.1"]
  conditions: {ready: true}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: rigtest
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: rigtest
  labels: {app: web}
spec:
  serviceAccountName: web
  containers:
  - name: app
    image: example.invalid/web:1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: rigtest
spec:
  hosts: ["web.rigtest.svc.cluster.local"]
  http:
  - route:
    - destination: {host: web.rigtest.svc.cluster.local}
`

func TestAPIServer(t *testing.T) {
	a := StartAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := a.Clientset()

	a.Apply(t, rigWorld)
	a.Apply(t, rigWorld) // idempotent: apply updates what exists

	svc, err := cs.CoreV1().Services("rigtest").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP[:6] != "10.96." {
		t.Errorf("Service clusterIP = %q, want one in 10.96.0.0/16", svc.Spec.ClusterIP)
	}
	eps, err := cs.DiscoveryV1().EndpointSlices("rigtest").Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps.Endpoints) != 1 || eps.Endpoints[0].Addresses[0] != "10.1.0.1" {
		t.Errorf("EndpointSlice endpoints = %+v", eps.Endpoints)
	}
	pod, err := cs.CoreV1().Pods("rigtest").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "web" {
		t.Errorf("Pod serviceAccountName = %q", pod.Spec.ServiceAccountName)
	}
	vs, err := a.Istio().NetworkingV1().VirtualServices("rigtest").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := vs.Spec.GetHosts(); len(got) != 1 || got[0] != "web.rigtest.svc.cluster.local" {
		t.Errorf("VirtualService hosts = %v", got)
	}

	// The kubeconfig works, and authorization is real RBAC: anonymous is denied.
	kc, err := clientcmd.BuildConfigFromFlags("", a.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(kc).CoreV1().Namespaces().Get(ctx, "rigtest", metav1.GetOptions{}); err != nil {
		t.Errorf("kubeconfig %s: %v", a.Kubeconfig, err)
	}
	anon := rest.AnonymousClientConfig(a.RestConfig)
	_, err = kubernetes.NewForConfigOrDie(anon).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("anonymous list namespaces: err = %v, want Forbidden", err)
	}

	// Before the restart: a raw watch (it ends when the apiserver goes away) and an
	// informer (it re-lists and re-watches by itself, as mizzen's do).
	svcs, err := cs.CoreV1().Services("rigtest").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Services("rigtest").Watch(ctx, metav1.ListOptions{ResourceVersion: svcs.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	watchEnded := make(chan struct{})
	go func() {
		for range w.ResultChan() {
		}
		close(watchEnded)
	}()
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("rigtest"))
	svcInformer := factory.Core().V1().Services().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), svcInformer.HasSynced) {
		t.Fatal("informer did not sync")
	}

	a.Restart(t)

	select {
	case <-watchEnded:
	case <-time.After(10 * time.Second):
		t.Errorf("watch from before the restart is still open")
	}
	w.Stop()

	// Same objects, same resourceVersions (same etcd data).
	svc2, err := cs.CoreV1().Services("rigtest").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if svc2.ResourceVersion != svc.ResourceVersion || svc2.Spec.ClusterIP != svc.Spec.ClusterIP {
		t.Errorf("after restart: Service rv/clusterIP %s/%s, before %s/%s", svc2.ResourceVersion, svc2.Spec.ClusterIP, svc.ResourceVersion, svc.Spec.ClusterIP)
	}
	if _, err := a.Istio().NetworkingV1().VirtualServices("rigtest").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("after restart: VirtualService: %v", err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("rigtest").Get(ctx, "web-1", metav1.GetOptions{}); err != nil {
		t.Errorf("after restart: EndpointSlice: %v", err)
	}

	// A watch re-established after the restart (list, then watch from the list's
	// resourceVersion) and the informer both see a new object.
	svcs, err = cs.CoreV1().Services("rigtest").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs.Items) != 1 {
		t.Errorf("after restart: %d Services in rigtest, want 1", len(svcs.Items))
	}
	w2, err := cs.CoreV1().Services("rigtest").Watch(ctx, metav1.ListOptions{ResourceVersion: svcs.ResourceVersion})
	if err != nil {
		t.Fatalf("re-establishing the watch: %v", err)
	}
	defer w2.Stop()
	a.Apply(t, `
apiVersion: v1
kind: Service
metadata: {name: late, namespace: rigtest}
spec:
  ports: [{name: http, port: 80}]
`)
	timeout := time.After(20 * time.Second)
	for seen := false; !seen; {
		select {
		case ev, ok := <-w2.ResultChan():
			if !ok {
				t.Fatal("re-established watch closed")
			}
			if ev.Type == watch.Error {
				t.Fatalf("re-established watch: %v", apierrors.FromObject(ev.Object))
			}
			if s, isSvc := ev.Object.(*corev1.Service); ev.Type == watch.Added && isSvc && s.Name == "late" {
				seen = true
			}
		case <-timeout:
			t.Fatal("re-established watch did not see Service rigtest/late")
		}
	}
	err = Eventually(ctx, 50*time.Millisecond, func(context.Context) error {
		if _, ok, _ := svcInformer.GetStore().GetByKey("rigtest/late"); !ok {
			return fmt.Errorf("informer has no rigtest/late")
		}
		return nil
	})
	if err != nil {
		t.Errorf("informer across the restart: %v", err)
	}

	// A crash (SIGKILL) loses nothing either.
	a.Kill()
	if a.Running() {
		t.Fatal("apiserver still running after Kill")
	}
	a.Restart(t)
	if _, err := cs.CoreV1().Services("rigtest").Get(ctx, "late", metav1.GetOptions{}); err != nil {
		t.Errorf("after kill and restart: %v", err)
	}

	a.Delete(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: rigtest}
`)
	if _, err := a.Istio().NetworkingV1().VirtualServices("rigtest").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after Delete: VirtualService err = %v, want NotFound", err)
	}
	a.Delete(t, `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "never-was", "namespace": "rigtest"}}`)
}

func TestLockFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(path, time.Second, func() {})
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	if _, err := lockFile(path, 600*time.Millisecond, func() { waited = true }); err == nil || !waited {
		t.Fatalf("second lock: err=%v waited=%v, want a timeout after waiting", err, waited)
	}
	unlock()
	unlock2, err := lockFile(path, time.Second, func() {})
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
