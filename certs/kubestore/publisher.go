package kubestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

const (
	// publishRetries bounds the retries of one namespace after a failure;
	// the informers' periodic resync gives it another chance later.
	publishRetries = 8
	resyncPeriod   = 10 * time.Minute
)

// ignoredNamespace: these get no root ConfigMap, as in istiod's namespace
// controller: nothing in them is ever injected.
func ignoredNamespace(ns string) bool {
	switch ns {
	case "kube-system", "kube-public", "kube-node-lease", "local-path-storage":
		return true
	}
	return false
}

// RootPublisher keeps ConfigMap istio-ca-root-cert (key root-cert.pem) equal
// to RootCertPEM in every namespace that is not being deleted, like istiod's
// namespace controller: it creates it in new namespaces and puts it back when
// someone deletes or edits it. Other keys in the ConfigMap are left alone.
type RootPublisher struct {
	Client      kubernetes.Interface
	RootCertPEM []byte
	Logger      *slog.Logger // nil: slog.Default()

	// Workers is the number of namespaces synced in parallel (default 2).
	Workers int
}

// Run publishes until ctx is done. It returns an error only if the caches
// cannot sync; on cancellation it returns nil after its goroutines stop.
func (p *RootPublisher) Run(ctx context.Context) error {
	if len(p.RootCertPEM) == 0 {
		return errors.New("root publisher: empty root certificate")
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "root-publisher", "configmap", RootConfigMap)
	workers := p.Workers
	if workers <= 0 {
		workers = 2
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	nsFactory := informers.NewSharedInformerFactory(p.Client, resyncPeriod)
	cmFactory := informers.NewSharedInformerFactoryWithOptions(p.Client, resyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", RootConfigMap).String()
		}))
	nsInformer := nsFactory.Core().V1().Namespaces()
	cmInformer := cmFactory.Core().V1().ConfigMaps()

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "root-publisher"})
	defer queue.ShutDown()

	enqueueNS := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok {
			queue.Add(ns.Name)
		}
	}
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueNS,
		UpdateFunc: func(_, obj any) { enqueueNS(obj) },
	}); err != nil {
		return fmt.Errorf("root publisher: %w", err)
	}
	enqueueCM := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		// The field selector keeps others out on a real apiserver; the check
		// is for clients that ignore it (the fake clientset does).
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == RootConfigMap {
			queue.Add(cm.Namespace)
		}
	}
	if _, err := cmInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueCM,
		UpdateFunc: func(_, obj any) { enqueueCM(obj) },
		DeleteFunc: enqueueCM,
	}); err != nil {
		return fmt.Errorf("root publisher: %w", err)
	}

	nsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	defer nsFactory.Shutdown()
	defer cmFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nsInformer.Informer().HasSynced, cmInformer.Informer().HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("root publisher: caches did not sync")
	}
	log.Info("publishing mesh root to every namespace")

	s := &syncer{
		client: p.Client, root: p.RootCertPEM, log: log,
		namespaces: nsInformer.Lister(), configMaps: cmInformer.Lister(),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.next(ctx, queue) {
			}
		}()
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	return nil
}

type syncer struct {
	client     kubernetes.Interface
	root       []byte
	log        *slog.Logger
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
}

func (s *syncer) next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	ns, shutdown := queue.Get()
	if shutdown {
		return false
	}
	defer queue.Done(ns)
	err := s.sync(ctx, ns)
	switch {
	case err == nil:
		queue.Forget(ns)
	case ctx.Err() != nil:
		queue.Forget(ns)
	case queue.NumRequeues(ns) < publishRetries:
		s.log.Debug("retrying", "namespace", ns, "err", err)
		queue.AddRateLimited(ns)
	default:
		s.log.Error("giving up until the next resync", "namespace", ns, "err", err)
		queue.Forget(ns)
	}
	return true
}

func (s *syncer) sync(ctx context.Context, namespace string) error {
	ns, err := s.namespaces.Get(namespace)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating || ignoredNamespace(namespace) {
		return nil // creating into it would fail with Forbidden, and is pointless
	}
	want := string(s.root)
	cm, err := s.configMaps.ConfigMaps(namespace).Get(RootConfigMap)
	if apierrors.IsNotFound(err) {
		_, err = s.client.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: RootConfigMap, Namespace: namespace,
				Labels: map[string]string{"istio.io/config": "true"},
			},
			Data: map[string]string{RootConfigMapKey: want},
		}, metav1.CreateOptions{})
		if err != nil {
			// AlreadyExists means the cache is behind; the retry sees it.
			return fmt.Errorf("create configmap %s/%s: %w", namespace, RootConfigMap, err)
		}
		s.log.Info("created", "namespace", namespace)
		return nil
	}
	if err != nil {
		return err
	}
	if cm.Data[RootConfigMapKey] == want {
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[RootConfigMapKey] = want
	if _, err := s.client.CoreV1().ConfigMaps(namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		// Conflict means the cache is behind; the retry sees the newer one.
		return fmt.Errorf("update configmap %s/%s: %w", namespace, RootConfigMap, err)
	}
	s.log.Info("repaired", "namespace", namespace)
	return nil
}
