package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/mizzenmesh/mizzen/pkg/inject"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/webhook"
)

// webhookOptions are serve's admission-webhook flags.
type webhookOptions struct {
	addr              string
	injectorConfigMap string
	mutatingName      string
	validatingName    string
}

// addWebhookFlags registers the webhook flags on serve.
func addWebhookFlags(f *pflag.FlagSet, o *webhookOptions) {
	f.StringVar(&o.addr, "webhook-addr", "127.0.0.1:15017",
		"Kubernetes mode: HTTPS listen address of the admission webhooks /inject (sidecar injection) and /validate (Istio config); empty: disabled")
	f.StringVar(&o.injectorConfigMap, "injector-configmap", inject.ConfigMapName,
		"ConfigMap in the system namespace holding the injector's values and config (as Istio's)")
	f.StringVar(&o.mutatingName, "injector-webhook-config", "istio-sidecar-injector",
		"MutatingWebhookConfiguration whose caBundle mizzen keeps set to the mesh root")
	f.StringVar(&o.validatingName, "validator-webhook-config", "",
		"ValidatingWebhookConfiguration whose caBundle mizzen keeps set to the mesh root (default istio-validator-<system namespace>)")
}

// startWebhooks serves /inject and /validate over TLS (mizzen's certificate
// from the mesh CA, for istiod.<system namespace>.svc and the serving names)
// and keeps the webhook configurations' caBundle at the mesh root. It returns
// at once; its goroutines run under run and end with ctx. The caBundle
// patching is singleton work, handed to singleton (the leader's tasks). With
// --webhook-addr empty it does nothing.
//
// It returns a readiness check for /ready: a replica must not be ready (and
// get webhook calls from the istiod Service) before its caches have synced,
// or the injector's failurePolicy Fail would refuse pods meanwhile.
func startWebhooks(ctx context.Context, log *slog.Logger, cfg *rest.Config, o serveOptions, ca *caHolder,
	reg prometheus.Registerer, run func(func()), singleton func(func(ctx context.Context))) (func() error, error) {
	w := o.webhook
	if w.addr == "" {
		return nil, nil
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("webhooks: kubernetes client: %w", err)
	}
	lis, err := net.Listen("tcp", w.addr)
	if err != nil {
		return nil, fmt.Errorf("webhook listener (--webhook-addr): %w", err)
	}
	log = log.With("component", "webhook")
	state := &injectorState{log: log, namespace: o.systemNamespace, configMap: w.injectorConfigMap}
	state.cfg.Store(inject.DefaultConfig())

	nsFactory := informers.NewSharedInformerFactory(client, 0)
	cmFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(o.systemNamespace))
	namespaces := nsFactory.Core().V1().Namespaces()
	configMaps := cmFactory.Core().V1().ConfigMaps()
	state.configMaps = configMaps.Lister()
	onCM := func(obj any) {
		if cm, ok := obj.(*corev1.ConfigMap); ok && (cm.Name == w.injectorConfigMap || cm.Name == model.MeshConfigMapName) {
			state.reload()
		}
	}
	if _, err := configMaps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onCM, UpdateFunc: func(_, n any) { onCM(n) }, DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			onCM(obj)
		},
	}); err != nil {
		lis.Close()
		return nil, fmt.Errorf("webhooks: watching ConfigMaps: %w", err)
	}
	nsLister := namespaces.Lister()
	nsInformer := namespaces.Informer() // created before Start, or the factory starts nothing

	server := &webhook.Server{
		Log:          log,
		Metrics:      webhook.NewMetrics(reg),
		InjectConfig: func() *inject.Config { return state.cfg.Load() },
		NamespaceLabels: func(ctx context.Context, name string) (map[string]string, error) {
			ns, err := nsLister.Get(name)
			if apierrors.IsNotFound(err) {
				// A namespace created a moment ago may not have reached the
				// informer yet; ask the apiserver rather than guess.
				ns, err = client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			}
			if err != nil {
				return nil, err
			}
			return ns.Labels, nil
		},
	}
	var synced atomic.Bool
	handler := server.Handler()
	names := webhookServingNames(o, w.addr)
	sc := &servingCerts{ca: ca, names: names, ttl: 24 * time.Hour}
	httpServer := &http.Server{
		// Until the injector config and namespaces are known, answer 503:
		// injecting with defaults (say, the wrong discovery address) would be
		// worse than the apiserver applying the webhook's failurePolicy.
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if !synced.Load() {
				http.Error(rw, "mizzen's webhook caches are not synced yet", http.StatusServiceUnavailable)
				return
			}
			handler.ServeHTTP(rw, r)
		}),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: sc.get},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug), // TLS handshakes before the CA is ready
	}
	nsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	run(func() {
		defer nsFactory.Shutdown()
		defer cmFactory.Shutdown()
		if !cache.WaitForCacheSync(ctx.Done(), nsInformer.HasSynced, configMaps.Informer().HasSynced) {
			return
		}
		state.reload()
		synced.Store(true)
		<-ctx.Done()
	})
	run(func() {
		if err := httpServer.ServeTLS(lis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("webhook server stopped", "err", err)
		}
	})
	run(func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdownCtx)
	})
	validating := w.validatingName
	if validating == "" {
		validating = "istio-validator-" + o.systemNamespace
	}
	singleton(func(ctx context.Context) {
		runCABundlePatcher(ctx, log, client, ca, w.mutatingName, validating)
	})
	log.Info("webhooks serving", "addr", "https://"+lis.Addr().String(), "paths", []string{webhook.InjectPath, webhook.ValidatePath},
		"names", names, "injector_configmap", o.systemNamespace+"/"+w.injectorConfigMap)
	return func() error {
		if !synced.Load() {
			return fmt.Errorf("webhook caches (namespaces, injector ConfigMap) not synced yet")
		}
		return nil
	}, nil
}

// webhookServingNames are the names in the webhook's certificate: the
// Service the webhook configurations name (istiod.<ns>.svc), the serving
// names of the secure port, and the listen address itself when it is a
// specific IP (a configuration with `url: https://127.0.0.1:15017/inject`).
func webhookServingNames(o serveOptions, addr string) []string {
	names := []string{"istiod." + o.systemNamespace + ".svc", "istiod." + o.systemNamespace + ".svc.cluster.local"}
	names = append(names, o.servingNames...)
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			names = append(names, host)
		}
	}
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// injectorState is the injector configuration in force: the last good one
// read from the injector and mesh ConfigMaps.
type injectorState struct {
	log        *slog.Logger
	namespace  string
	configMap  string
	configMaps corelisters.ConfigMapLister
	cfg        atomic.Pointer[inject.Config]

	mu      sync.Mutex // serializes reloads (informer events and the first sync)
	last    string     // the error last logged, so a broken ConfigMap is logged once
	summary string     // the config last logged, so an unchanged one is not
}

// reload rebuilds the configuration; a broken ConfigMap is logged naming its
// key and field, and the previous configuration stays.
func (s *injectorState) reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := map[string]string{}
	if cm, err := s.configMaps.ConfigMaps(s.namespace).Get(s.configMap); err == nil {
		data = cm.Data
	}
	meshYAML := ""
	if cm, err := s.configMaps.ConfigMaps(s.namespace).Get(model.MeshConfigMapName); err == nil {
		meshYAML = cm.Data[model.MeshConfigMapKey]
	}
	cfg, err := inject.FromConfigMap(data, meshYAML)
	if err != nil {
		if msg := err.Error(); msg != s.last {
			s.last = msg
			s.log.Error("injector config refused; the previous one stays", "configmap", s.namespace+"/"+s.configMap,
				"mesh_configmap", s.namespace+"/"+model.MeshConfigMapName, "err", err)
		}
		return
	}
	s.last = ""
	s.cfg.Store(cfg)
	attrs := []any{"proxy_image", cfg.ProxyImage, "init_image", cfg.InitImage, "discovery_address", cfg.DiscoveryAddress, "policy", cfg.Policy,
		"default_templates", cfg.DefaultTemplates, "templates", len(cfg.Templates)}
	if summary := fmt.Sprint(attrs...) + fmt.Sprint(cfg.Notes); summary != s.summary {
		s.summary = summary
		s.log.Info("injector config", attrs...)
		// What the ConfigMap asks for and mizzen does not apply, once per
		// change of the config.
		for _, n := range cfg.Notes {
			s.log.Warn("injector config: not applied", "configmap", s.namespace+"/"+s.configMap, "note", n)
		}
	}
}

// runCABundlePatcher keeps every webhook's clientConfig.caBundle in the two
// configurations equal to the mesh root, so the apiserver trusts mizzen's
// serving certificate: once the CA is loaded, then whenever a configuration
// appears or changes (a re-applied manifest), with backoff on errors. A
// missing configuration is not an error: mizzen may run without one.
func runCABundlePatcher(ctx context.Context, log *slog.Logger, client kubernetes.Interface, ca *caHolder, mutating, validating string) {
	log = log.With("mutating_webhook_config", mutating, "validating_webhook_config", validating)
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(_, _ any) { poke() }}
	// One informer per configuration, by name, so the RBAC rule can be
	// limited to these two names.
	byName := func(name string) informers.SharedInformerFactory {
		return informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	}
	mf, vf := byName(mutating), byName(validating)
	for _, inf := range []cache.SharedIndexInformer{
		mf.Admissionregistration().V1().MutatingWebhookConfigurations().Informer(),
		vf.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer(),
	} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			log.Error("caBundle: watching webhook configurations", "err", err)
			return
		}
	}
	mf.Start(ctx.Done())
	vf.Start(ctx.Done())
	defer mf.Shutdown()
	defer vf.Shutdown()
	poke()
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		c := ca.get()
		if c == nil {
			// The CA loads in the background; look again shortly.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			poke()
			continue
		}
		if err := patchCABundles(ctx, log, client, c.RootCertPEM(), mutating, validating); err != nil {
			log.Error("caBundle: patching the webhook configurations failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			poke()
			continue
		}
		backoff = time.Second
	}
}

// patchCABundles sets caBundle on every webhook of both configurations that
// lacks the root; Update carries the resourceVersion read, so a concurrent
// change is a conflict and is retried, never overwritten.
func patchCABundles(ctx context.Context, log *slog.Logger, client kubernetes.Interface, root []byte, mutating, validating string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := client.AdmissionregistrationV1()
	if mwc, err := adm.MutatingWebhookConfigurations().Get(ctx, mutating, metav1.GetOptions{}); err == nil {
		changed := 0
		for i := range mwc.Webhooks {
			if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, root) {
				mwc.Webhooks[i].ClientConfig.CABundle = root
				changed++
			}
		}
		if changed > 0 {
			if _, err := adm.MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{FieldManager: "mizzen"}); err != nil {
				return fmt.Errorf("MutatingWebhookConfiguration %s webhooks[*].clientConfig.caBundle: %w", mutating, err)
			}
			log.Info("caBundle set", "kind", "MutatingWebhookConfiguration", "name", mutating, "webhooks", changed)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("MutatingWebhookConfiguration %s: %w", mutating, err)
	}
	if vwc, err := adm.ValidatingWebhookConfigurations().Get(ctx, validating, metav1.GetOptions{}); err == nil {
		changed := 0
		for i := range vwc.Webhooks {
			if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, root) {
				vwc.Webhooks[i].ClientConfig.CABundle = root
				changed++
			}
		}
		if changed > 0 {
			if _, err := adm.ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{FieldManager: "mizzen"}); err != nil {
				return fmt.Errorf("ValidatingWebhookConfiguration %s webhooks[*].clientConfig.caBundle: %w", validating, err)
			}
			log.Info("caBundle set", "kind", "ValidatingWebhookConfiguration", "name", validating, "webhooks", changed)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("ValidatingWebhookConfiguration %s: %w", validating, err)
	}
	return nil
}
