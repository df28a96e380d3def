// Package kube is the Kubernetes config source: shared informers on a real
// cluster feeding the same model.Inputs as the file source.
//
// State is never kept incrementally. Informer events only say "something
// changed"; every update rebuilds the whole model.Inputs from the informers'
// caches (listers). The caches are client-go's: a dropped watch is resumed, a
// restarted apiserver or an expired resourceVersion leads to a re-list that
// replaces the cache wholesale (deletes missed meanwhile arrive as tombstones).
// Because the output is read from those caches rather than assembled from the
// stream of events, it can hold neither duplicates nor objects whose deletion
// was missed, and it cannot miss an object the cache holds: it is consistent
// by construction, whatever order or number of events led there.
package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/debounce"
	"github.com/mizzenmesh/mizzen/pkg/source/decode"
)

const (
	defaultDebounce        = 10 * time.Millisecond
	defaultMaxDelay        = 100 * time.Millisecond
	defaultSystemNamespace = "istio-system"
	defaultCRDPoll         = 30 * time.Second
	// MeshConfigMap is the ConfigMap holding the mesh config, under key "mesh".
	MeshConfigMap = "istio"
)

// Options configure a Source. The zero value is usable.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnError receives each Istio object that fails to decode, once per
	// (object, resourceVersion). The object is left out of the inputs; the
	// rest keeps flowing. When nil, errors are logged instead. It is called
	// from Run's goroutine.
	OnError func(Error)
	// Namespaces selects the namespaces in scope, like Istio's
	// discoverySelectors: a namespace is in scope if its labels match any of
	// the selectors; no selectors means every namespace. Namespaced objects
	// outside the scope are left out, and a namespace whose labels change is
	// taken in or left out on the next update. The system namespace is always
	// in scope, as it is for istiod.
	Namespaces []metav1.LabelSelector
	// ResyncPeriod is the informers' resync period; 0 (the default) disables
	// resync. Resyncs never cause an update on their own: an object whose
	// resourceVersion did not change is not a change.
	ResyncPeriod time.Duration
	// Debounce is the quiet period that ends a burst of events: one update is
	// made for the whole burst (the first event after a calm of this long is
	// built at once). Defaults to 10ms.
	Debounce time.Duration
	// MaxDelay caps how long a steady stream of events may postpone an update,
	// counted from the first event of the burst. Defaults to the larger of
	// 100ms and 10×Debounce.
	MaxDelay time.Duration
	// SystemNamespace holds the mesh ConfigMap ("istio", key "mesh").
	// Defaults to istio-system.
	SystemNamespace string
	// CRDPollInterval is how often to look again for Istio kinds whose CRD was
	// not installed when Run started. Defaults to 30s.
	CRDPollInterval time.Duration
}

// Error is an object the source skipped.
type Error struct {
	Kind, Namespace, Name string
	ResourceVersion       string
	// Field is a path into the object, e.g. "spec.http[0].route[0].weight";
	// empty when the problem is not tied to a field.
	Field  string
	Reason string
}

// Error renders as `Kind ns/name: field: reason`.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind)
	b.WriteString(" ")
	if e.Namespace != "" {
		b.WriteString(e.Namespace)
		b.WriteString("/")
	}
	b.WriteString(e.Name)
	b.WriteString(": ")
	if e.Field != "" && !strings.Contains(e.Reason, e.Field) {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// discoverer is the part of the discovery client the source uses.
type discoverer interface {
	ServerGroups() (*metav1.APIGroupList, error)
	ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error)
}

// istioKind is one Istio CR kind and, once found, the informer on its
// preferred served version.
type istioKind struct {
	group, kind, resource string
	// unimplemented: a kind mizzen only reports (model.UnimplementedKinds),
	// read by name in any of versions.
	unimplemented bool
	versions      []string
	// The fields below are only touched by Run's goroutine.
	gvr    schema.GroupVersionResource
	lister cache.GenericLister // nil until the kind's informer has synced
	// decoded caches the decoding of each object, keyed by namespace/name, so
	// an object is decoded (and its error reported) once per version.
	decoded map[string]*decoded
	// listed: values and partial are the last list's (build keeps them
	// while the kind has no events): its decoded objects, or its objects'
	// metadata for a kind mizzen only reports.
	listed  bool
	values  []any
	partial []*metav1.PartialObjectMetadata
}

type decoded struct {
	obj             *unstructured.Unstructured
	uid             types.UID
	resourceVersion string
	value           any // nil if the object failed to decode
}

func istioKinds() []*istioKind {
	return []*istioKind{
		{group: decode.NetworkingGroup, kind: "VirtualService", resource: "virtualservices"},
		{group: decode.NetworkingGroup, kind: "DestinationRule", resource: "destinationrules"},
		{group: decode.NetworkingGroup, kind: "Gateway", resource: "gateways"},
		{group: decode.NetworkingGroup, kind: "ServiceEntry", resource: "serviceentries"},
		{group: decode.NetworkingGroup, kind: "Sidecar", resource: "sidecars"},
		{group: decode.SecurityGroup, kind: "PeerAuthentication", resource: "peerauthentications"},
		{group: decode.SecurityGroup, kind: "AuthorizationPolicy", resource: "authorizationpolicies"},
		{group: decode.SecurityGroup, kind: "RequestAuthentication", resource: "requestauthentications"},
	}
}

// allKinds are the Istio kinds mizzen implements and those it only reports.
func allKinds() []*istioKind {
	out := istioKinds()
	for _, k := range model.UnimplementedKinds() {
		out = append(out, &istioKind{group: k.Group, kind: k.Kind, resource: k.Resource, unimplemented: true, versions: k.Versions})
	}
	return out
}

// groupVersions are the versions to look for a group's kinds in, preferred first.
func (s *Source) groupVersions(group string) []string {
	if vs := decode.IstioVersions(group); vs != nil {
		return vs
	}
	var out []string
	for _, k := range s.istio {
		if k.group != group {
			continue
		}
		for _, v := range k.versions {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// Source watches a cluster through shared informers. Run must be called at
// most once.
type Source struct {
	// hashes caches object fingerprints across builds (build is only called
	// from Run's goroutine).
	hashes *model.HashCache

	kube      kubernetes.Interface
	dyn       dynamic.Interface
	disc      discoverer
	log       *slog.Logger
	onError   func(Error)
	selectors []labels.Selector
	resync    time.Duration
	debounce  time.Duration
	maxDelay  time.Duration
	systemNS  string
	crdPoll   time.Duration

	started atomic.Bool
	ready   atomic.Bool
	// changed is signalled (without blocking) by informer event handlers.
	changed chan struct{}
	// dirty are the kinds with events since the last build (everyKind: every
	// kind), marked by event handlers and taken by build: a kind without
	// events keeps its last list, so an endpoint change does not list and
	// sort every object of the cluster again, and hands the model the same
	// slices it had (model.Build then starts from the last snapshot).
	dirtyMu sync.Mutex
	dirty   map[string]bool
	// lists are each core kind's last list (build's goroutine only).
	lists coreLists

	// Set by Run before the informers start.
	namespaces      corelisters.NamespaceLister
	services        corelisters.ServiceLister
	endpointSlices  discoverylisters.EndpointSliceLister
	pods            corelisters.PodLister
	nodes           corelisters.NodeLister
	serviceAccounts corelisters.ServiceAccountLister
	configMaps      corelisters.ConfigMapLister
	secrets         corelisters.SecretLister
	istio           []*istioKind
}

// New returns a Source for the cluster cfg points at. Nothing is contacted
// until Run.
func New(cfg *rest.Config, opts Options) (*Source, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return NewForClients(kube, dyn, opts)
}

// NewForClients is New with the clients given, e.g. fakes in tests. Istio CRD
// versions are discovered through kube.Discovery().
func NewForClients(kube kubernetes.Interface, dyn dynamic.Interface, opts Options) (*Source, error) {
	return newSource(kube, dyn, kube.Discovery(), opts)
}

func newSource(kube kubernetes.Interface, dyn dynamic.Interface, disc discoverer, opts Options) (*Source, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Source{
		kube:     kube,
		dyn:      dyn,
		disc:     disc,
		log:      log.With("source", "kube"),
		onError:  opts.OnError,
		resync:   opts.ResyncPeriod,
		debounce: cmp.Or(max(opts.Debounce, 0), defaultDebounce),
		systemNS: cmp.Or(opts.SystemNamespace, defaultSystemNamespace),
		crdPoll:  cmp.Or(max(opts.CRDPollInterval, 0), defaultCRDPoll),
		changed:  make(chan struct{}, 1),
		istio:    allKinds(),
	}
	s.maxDelay = cmp.Or(max(opts.MaxDelay, 0), max(defaultMaxDelay, 10*s.debounce))
	for i, ls := range opts.Namespaces {
		sel, err := metav1.LabelSelectorAsSelector(&ls)
		if err != nil {
			return nil, fmt.Errorf("namespace selector %d: %w", i+1, err)
		}
		s.selectors = append(s.selectors, sel)
	}
	return s, nil
}

// Ready reports whether Run has synced every cache and delivered the first
// full inputs.
func (s *Source) Ready() bool { return s.ready.Load() }

// Run starts the informers, waits until every cache has synced, calls
// onChange with the full inputs, and then again, debounced, after every
// change. It returns nil when ctx is done. onChange is called from Run's
// goroutine, one call at a time; the objects it receives come from the
// informer caches and must not be modified.
func (s *Source) Run(ctx context.Context, onChange func(model.Inputs)) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("kube source: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	missing, ok := s.discover(ctx)
	if !ok {
		return nil
	}

	strip := informers.WithTransform(stripManagedFields)
	factory := informers.NewSharedInformerFactoryWithOptions(s.kube, s.resync, strip)
	// Only the mesh ConfigMap is of interest: a field-selected informer keeps
	// every other ConfigMap of the cluster out of memory.
	meshFactory := informers.NewSharedInformerFactoryWithOptions(s.kube, s.resync, strip,
		informers.WithNamespace(s.systemNS),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", MeshConfigMap).String()
		}))
	// Secrets only for Gateway credentials (tls.credentialName): the apiserver
	// leaves out service-account tokens, and the transform empties every
	// Secret that cannot be a credential before it is cached, so other
	// Secrets cost their metadata only and their contents never stay here.
	secretFactory := informers.NewSharedInformerFactoryWithOptions(s.kube, s.resync,
		informers.WithTransform(stripSecret),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("type", string(corev1.SecretTypeServiceAccountToken)).String()
		}))
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(s.dyn, s.resync)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		factory.Shutdown()
		meshFactory.Shutdown()
		secretFactory.Shutdown()
		dynFactory.Shutdown()
	}()

	var synced []cache.InformerSynced
	watch := func(inf cache.SharedIndexInformer, kind string) error {
		if _, err := inf.AddEventHandler(s.handler(kind)); err != nil {
			return fmt.Errorf("watching %s: %w", kind, err)
		}
		synced = append(synced, inf.HasSynced)
		return nil
	}
	core := factory.Core().V1()
	s.namespaces = core.Namespaces().Lister()
	s.services = core.Services().Lister()
	s.endpointSlices = factory.Discovery().V1().EndpointSlices().Lister()
	s.pods = core.Pods().Lister()
	s.nodes = core.Nodes().Lister()
	s.serviceAccounts = core.ServiceAccounts().Lister()
	s.configMaps = meshFactory.Core().V1().ConfigMaps().Lister()
	s.secrets = secretFactory.Core().V1().Secrets().Lister()
	for _, w := range []struct {
		inf  cache.SharedIndexInformer
		kind string
	}{
		{core.Namespaces().Informer(), "Namespace"},
		{core.Services().Informer(), "Service"},
		{factory.Discovery().V1().EndpointSlices().Informer(), "EndpointSlice"},
		{core.Pods().Informer(), "Pod"},
		{core.Nodes().Informer(), "Node"},
		{core.ServiceAccounts().Informer(), "ServiceAccount"},
		{meshFactory.Core().V1().ConfigMaps().Informer(), "ConfigMap"},
		{secretFactory.Core().V1().Secrets().Informer(), "Secret"},
	} {
		if err := watch(w.inf, w.kind); err != nil {
			return err
		}
	}
	var istioListers []func()
	for _, k := range s.istio {
		if k.gvr.Empty() || !s.readable(ctx, k) {
			continue
		}
		gi, err := s.istioInformer(dynFactory, k)
		if err != nil {
			return err
		}
		synced = append(synced, gi.Informer().HasSynced)
		istioListers = append(istioListers, func() { k.lister = gi.Lister() })
	}

	factory.Start(ctx.Done())
	meshFactory.Start(ctx.Done())
	secretFactory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	start := time.Now()
	if !waitSynced(ctx, synced...) {
		return nil
	}
	for _, set := range istioListers {
		set()
	}
	// Events of the initial list are all in the first build.
	select {
	case <-s.changed:
	default:
	}
	onChange(s.build())
	s.ready.Store(true)
	s.log.Info("caches synced", "took", time.Since(start).Round(time.Millisecond))

	// Istio kinds whose CRD is not installed yet are looked for again now and
	// then; each one found joins the inputs once its cache has synced.
	activated := make(chan activation)
	if len(missing) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.pollCRDs(ctx, dynFactory, missing, activated)
		}()
	}

	burst := debounce.New(s.debounce, s.maxDelay)
	// A lone change after calm (an EndpointSlice patch) is built at once;
	// events right behind it are merged. Pushes are coalesced again in the
	// xDS server, so a burst costs at most one more push.
	burst.Leading = true
	defer burst.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
			burst.Add()
		case a := <-activated:
			a.kind.lister = a.lister
			s.markDirty(a.kind.kind)
			burst.Add()
		case <-burst.C():
			burst.Fired()
			onChange(s.build())
		}
	}
}

type activation struct {
	kind   *istioKind
	lister cache.GenericLister
}

func (s *Source) istioInformer(f dynamicinformer.DynamicSharedInformerFactory, k *istioKind) (interface {
	Informer() cache.SharedIndexInformer
	Lister() cache.GenericLister
}, error) {
	gi := f.ForResource(k.gvr)
	inf := gi.Informer()
	transform := stripManagedFields
	if k.unimplemented {
		transform = stripToMetadata
	}
	if err := inf.SetTransform(transform); err != nil {
		return nil, fmt.Errorf("watching %s: %w", k.gvr, err)
	}
	if _, err := inf.AddEventHandler(s.handler(k.kind)); err != nil {
		return nil, fmt.Errorf("watching %s: %w", k.gvr, err)
	}
	return gi, nil
}

// readable checks that a kind mizzen only reports can be listed: RBAC that
// predates it (a ClusterRole granting networking.istio.io and
// security.istio.io only) would leave its informer retrying forever and the
// source never ready. Such a kind is logged and not watched; the kinds mizzen
// implements are always watched.
func (s *Source) readable(ctx context.Context, k *istioKind) bool {
	if !k.unimplemented {
		return true
	}
	if _, err := s.dyn.Resource(k.gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		s.log.Warn("cannot read a kind mizzen does not implement; its objects are not reported", "kind", k.kind, "group", k.group, "err", err)
		return false
	}
	return true
}

// waitSynced polls more often than cache.WaitForCacheSync (every 100ms), so
// that a small cluster is served within milliseconds of the lists returning.
func waitSynced(ctx context.Context, synced ...cache.InformerSynced) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		done := true
		for _, f := range synced {
			if !f() {
				done = false
				break
			}
		}
		if done {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// discover picks the version to watch for each Istio kind: the first of v1,
// v1beta1, v1alpha3 in which the apiserver serves it. Objects stored in any
// version are visible through every served version, converted by the
// apiserver (Istio's CRDs use the None strategy: the schemas are identical),
// so one informer per kind sees them all. It retries until discovery answers
// or ctx is done, and returns the kinds not served at all.
func (s *Source) discover(ctx context.Context) (missing []*istioKind, ok bool) {
	backoff := 100 * time.Millisecond
	for {
		found, err := s.servedVersions()
		if err == nil {
			var names, others []string
			for _, k := range s.istio {
				if v := found[k.group+"/"+k.resource]; v != "" {
					k.gvr = schema.GroupVersionResource{Group: k.group, Version: v, Resource: k.resource}
					s.log.Debug("watching Istio kind", "kind", k.kind, "version", v)
					continue
				}
				missing = append(missing, k)
				if k.unimplemented {
					others = append(others, k.resource+"."+k.group)
				} else {
					names = append(names, k.resource+"."+k.group)
				}
			}
			if len(names) > 0 {
				s.log.Warn("Istio CRDs not installed; these kinds are ignored until they are",
					"crds", strings.Join(names, ","), "recheck", s.crdPoll)
			}
			if len(others) > 0 {
				// Only watched to report their objects as not applied: that
				// these CRDs are absent is normal.
				s.log.Debug("CRDs of kinds mizzen does not implement not installed", "crds", strings.Join(others, ","))
			}
			return missing, true
		}
		s.log.Warn("API discovery failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// servedVersions maps "group/resource" to the preferred served version of
// each Istio kind the apiserver serves, looking only at the groups named
// (all with none).
func (s *Source) servedVersions(only ...string) (map[string]string, error) {
	groups, err := s.disc.ServerGroups()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range groups.Groups {
		if len(only) > 0 && !slices.Contains(only, g.Name) {
			continue
		}
		candidates := s.groupVersions(g.Name)
		if candidates == nil {
			continue
		}
		served := map[string]bool{}
		for _, v := range g.Versions {
			served[v.Version] = true
		}
		for _, v := range candidates {
			if !served[v] {
				continue
			}
			rl, err := s.disc.ServerResourcesForGroupVersion(g.Name + "/" + v)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", g.Name, v, err)
			}
			for _, r := range rl.APIResources {
				key := g.Name + "/" + r.Name // subresources ("x/status") never match a kind's resource
				if out[key] == "" {
					out[key] = v
				}
			}
		}
	}
	return out, nil
}

func (s *Source) pollCRDs(ctx context.Context, f dynamicinformer.DynamicSharedInformerFactory, missing []*istioKind, activated chan<- activation) {
	t := time.NewTicker(s.crdPoll)
	defer t.Stop()
	for len(missing) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Only the groups still missing a kind: with Gateway API absent, a
		// poll is one discovery request.
		var groups []string
		for _, k := range missing {
			if !slices.Contains(groups, k.group) {
				groups = append(groups, k.group)
			}
		}
		found, err := s.servedVersions(groups...)
		if err != nil {
			s.log.Debug("API discovery failed", "err", err)
			continue
		}
		var still []*istioKind
		for _, k := range missing {
			v := found[k.group+"/"+k.resource]
			if v == "" {
				still = append(still, k)
				continue
			}
			// k.gvr is only read by this goroutine from now on; Run's
			// goroutine reads nothing of k but lister and decoded.
			k.gvr = schema.GroupVersionResource{Group: k.group, Version: v, Resource: k.resource}
			if !s.readable(ctx, k) {
				continue
			}
			gi, err := s.istioInformer(f, k)
			if err != nil {
				s.log.Error("cannot watch Istio kind", "kind", k.kind, "err", err)
				continue
			}
			f.Start(ctx.Done())
			if !waitSynced(ctx, gi.Informer().HasSynced) {
				return
			}
			s.log.Info("Istio CRD installed; watching it", "kind", k.kind, "version", v)
			select {
			case activated <- activation{kind: k, lister: gi.Lister()}:
			case <-ctx.Done():
				return
			}
		}
		missing = still
	}
}

// handler turns informer events into a change signal. Objects in namespaces
// out of scope are ignored; a Namespace event always counts, since its labels
// decide the scope. Updates that did not change the resourceVersion (resyncs,
// and the re-list after a dropped watch, for objects that did not change
// meanwhile) are ignored.
func (s *Source) handler(kind string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if kind == "Secret" && !credential(obj) {
				return
			}
			s.notify(kind, obj)
		},
		UpdateFunc: func(oldObj, newObj any) {
			if kind == "Secret" && !credential(oldObj) && !credential(newObj) {
				return
			}
			o, err1 := meta.Accessor(oldObj)
			n, err2 := meta.Accessor(newObj)
			if err1 == nil && err2 == nil && n.GetResourceVersion() != "" &&
				o.GetResourceVersion() == n.GetResourceVersion() {
				return
			}
			// Nodes are read for their locality labels; their status
			// (heartbeats, conditions) changes all the time.
			if kind == "Node" && err1 == nil && err2 == nil && maps.Equal(o.GetLabels(), n.GetLabels()) {
				return
			}
			s.notify(kind, newObj)
		},
		DeleteFunc: func(obj any) {
			// A delete missed while the watch was down arrives as a
			// tombstone when the re-list no longer has the object; it
			// carries the last state the cache knew.
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				s.log.Debug("delete noticed on re-list", "kind", kind, "key", t.Key)
				if t.Obj == nil {
					s.signal()
					return
				}
				obj = t.Obj
			}
			if kind == "Secret" && !credential(obj) {
				return
			}
			s.notify(kind, obj)
		},
	}
}

// credential: most Secrets are no gateway credential, and their events must
// not rebuild the mesh; a change to or from a credential does.
func credential(obj any) bool {
	sec, ok := obj.(*corev1.Secret)
	return ok && model.IsCredentialSecret(sec)
}

func (s *Source) notify(kind string, obj any) {
	if kind != "Namespace" && len(s.selectors) > 0 {
		if m, err := meta.Accessor(obj); err == nil && !s.namespaceInScope(m.GetNamespace()) {
			return
		}
	}
	if kind == "Namespace" {
		kind = everyKind // which namespaces are in scope may change
	}
	s.markDirty(kind)
	s.wake()
}

// signal: something changed, what is not known.
func (s *Source) signal() {
	s.markDirty(everyKind)
	s.wake()
}

func (s *Source) wake() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// namespaceInScope looks the namespace up in the cache. It is only a filter
// on events: build decides scope again from one consistent list.
func (s *Source) namespaceInScope(ns string) bool {
	if len(s.selectors) == 0 || ns == s.systemNS {
		return true
	}
	n, err := s.namespaces.Get(ns)
	if err != nil {
		return false
	}
	return s.matches(n.Labels)
}

func (s *Source) matches(l map[string]string) bool {
	set := labels.Set(l)
	for _, sel := range s.selectors {
		if sel.Matches(set) {
			return true
		}
	}
	return false
}

// everyKind marks every kind dirty: a Namespace event (scope may change), a
// tombstone without its object.
const everyKind = "*"

// coreLists are the last lists of the core kinds, as build hands them over.
type coreLists struct {
	namespaces      []*corev1.Namespace
	services        []*corev1.Service
	endpointSlices  []*discoveryv1.EndpointSlice
	pods            []*corev1.Pod
	nodes           []*corev1.Node
	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
}

func (s *Source) markDirty(kind string) {
	s.dirtyMu.Lock()
	if s.dirty == nil {
		s.dirty = map[string]bool{}
	}
	s.dirty[kind] = true
	s.dirtyMu.Unlock()
}

// takeDirty returns the dirty kinds and starts a new set (a kind not yet
// listed is listed whatever the set says).
func (s *Source) takeDirty() func(kind string) bool {
	s.dirtyMu.Lock()
	d := s.dirty
	s.dirty = map[string]bool{}
	s.dirtyMu.Unlock()
	return func(kind string) bool { return d[everyKind] || d[kind] }
}

// relist returns the kind's last list, or lists it again when it had events.
func relist[T metav1.Object](dirty func(string) bool, kind string, last *[]T, list func() ([]T, error), keep func(T) bool) []T {
	if *last == nil || dirty(kind) {
		items, _ := list()
		*last = collect(items, keep)
	}
	return *last
}

// build reads the full inputs from the caches, in namespace/name order.
func (s *Source) build() model.Inputs {
	// The same cache every time: objects keep their fingerprint while their
	// resourceVersion does, so a change re-hashes only what it touched.
	if s.hashes == nil {
		s.hashes = model.NewHashCache()
	}
	in := model.Inputs{Hashes: s.hashes}
	all := labels.Everything()
	dirty := s.takeDirty()

	if s.lists.namespaces == nil || dirty("Namespace") {
		nss, _ := s.namespaces.List(all)
		s.lists.namespaces = collect(nss, func(n *corev1.Namespace) bool {
			return len(s.selectors) == 0 || n.Name == s.systemNS || s.matches(n.Labels)
		})
	}
	in.Namespaces = s.lists.namespaces
	scope := map[string]bool{s.systemNS: true}
	for _, n := range in.Namespaces {
		scope[n.Name] = true
	}
	inScope := func(ns string) bool { return len(s.selectors) == 0 || scope[ns] }

	l := &s.lists
	in.Services = relist(dirty, "Service", &l.services, func() ([]*corev1.Service, error) { return s.services.List(all) },
		func(o *corev1.Service) bool { return inScope(o.Namespace) })
	in.EndpointSlices = relist(dirty, "EndpointSlice", &l.endpointSlices, func() ([]*discoveryv1.EndpointSlice, error) { return s.endpointSlices.List(all) },
		func(o *discoveryv1.EndpointSlice) bool { return inScope(o.Namespace) })
	in.Pods = relist(dirty, "Pod", &l.pods, func() ([]*corev1.Pod, error) { return s.pods.List(all) },
		func(o *corev1.Pod) bool { return inScope(o.Namespace) })
	in.Nodes = relist(dirty, "Node", &l.nodes, func() ([]*corev1.Node, error) { return s.nodes.List(all) },
		func(*corev1.Node) bool { return true })
	in.ServiceAccounts = relist(dirty, "ServiceAccount", &l.serviceAccounts, func() ([]*corev1.ServiceAccount, error) { return s.serviceAccounts.List(all) },
		func(o *corev1.ServiceAccount) bool { return inScope(o.Namespace) })
	// The field selector already narrows the informer; this keeps it so for
	// a client that ignores field selectors.
	in.ConfigMaps = relist(dirty, "ConfigMap", &l.configMaps, func() ([]*corev1.ConfigMap, error) { return s.configMaps.List(all) },
		func(o *corev1.ConfigMap) bool { return o.Namespace == s.systemNS && o.Name == MeshConfigMap })
	in.Secrets = relist(dirty, "Secret", &l.secrets, func() ([]*corev1.Secret, error) { return s.secrets.List(all) },
		func(o *corev1.Secret) bool { return inScope(o.Namespace) && model.IsCredentialSecret(o) })

	for _, k := range s.istio {
		if k.lister == nil {
			continue
		}
		if k.listed && !dirty(k.kind) {
			in.Unimplemented = append(in.Unimplemented, k.partial...)
			for _, v := range k.values {
				decode.Append(&in, v)
			}
			continue
		}
		k.listed, k.partial, k.values = true, nil, nil
		objs, _ := k.lister.List(all)
		us := make([]*unstructured.Unstructured, 0, len(objs))
		for _, o := range objs {
			if u, ok := o.(*unstructured.Unstructured); ok && inScope(u.GetNamespace()) {
				us = append(us, u)
			}
		}
		slices.SortFunc(us, func(a, b *unstructured.Unstructured) int {
			return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
		})
		if k.unimplemented {
			for _, u := range us {
				k.partial = append(k.partial, &metav1.PartialObjectMetadata{
					TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: k.kind},
					ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
						ResourceVersion: u.GetResourceVersion(), Labels: u.GetLabels(), Annotations: u.GetAnnotations()},
				})
			}
			in.Unimplemented = append(in.Unimplemented, k.partial...)
			continue
		}
		live := make(map[string]*decoded, len(us))
		for _, u := range us {
			d := s.decodeIstio(k, u)
			live[u.GetNamespace()+"/"+u.GetName()] = d
			if d.value != nil {
				k.values = append(k.values, d.value)
				decode.Append(&in, d.value)
			}
		}
		// Dropping the entries of deleted (or out of scope) objects means an
		// object re-created with the same error is reported again.
		k.decoded = live
	}
	return in
}

// collect filters and sorts a lister's result into a new slice. The objects
// are shared with the cache and not touched.
func collect[T metav1.Object](items []T, keep func(T) bool) []T {
	out := make([]T, 0, len(items))
	for _, o := range items {
		if keep(o) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// decodeIstio decodes an Istio object through the same strict path as the
// file source (unstructured → JSON → decode.FromJSON), reusing the previous
// result while the object is unchanged.
func (s *Source) decodeIstio(k *istioKind, u *unstructured.Unstructured) *decoded {
	key := u.GetNamespace() + "/" + u.GetName()
	if d := k.decoded[key]; d != nil && (d.obj == u ||
		(d.resourceVersion != "" && d.resourceVersion == u.GetResourceVersion() && d.uid == u.GetUID())) {
		d.obj = u
		return d
	}
	d := &decoded{obj: u, uid: u.GetUID(), resourceVersion: u.GetResourceVersion()}
	value, err := decodeUnstructured(k.kind, u)
	if err != nil {
		field, reason := decode.Field(err)
		s.reportError(Error{
			Kind: k.kind, Namespace: u.GetNamespace(), Name: u.GetName(), ResourceVersion: u.GetResourceVersion(),
			Field: field, Reason: reason,
		})
		return d
	}
	d.value = value
	return d
}

func decodeUnstructured(kind string, u *unstructured.Unstructured) (any, error) {
	j, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	h, err := decode.ReadHeader(j)
	if err != nil {
		return nil, err
	}
	o, err := decode.FromJSON(h, j)
	if err != nil {
		return nil, err
	}
	if o == nil || o.Kind != kind {
		return nil, fmt.Errorf("unexpected %s %s in the %s informer", h.APIVersion, h.Kind, kind)
	}
	if !isIstioType(o.Value) {
		return nil, fmt.Errorf("unexpected %T in the %s informer", o.Value, kind)
	}
	return o.Value, nil
}

func isIstioType(v any) bool {
	switch v.(type) {
	case *networking.VirtualService, *networking.DestinationRule, *networking.Gateway,
		*networking.ServiceEntry, *networking.Sidecar,
		*security.PeerAuthentication, *security.AuthorizationPolicy, *security.RequestAuthentication:
		return true
	}
	return false
}

func (s *Source) reportError(e Error) {
	if s.onError != nil {
		s.onError(e)
		return
	}
	s.log.Warn("config object skipped", "kind", e.Kind, "namespace", e.Namespace, "name", e.Name,
		"resourceVersion", e.ResourceVersion, "field", e.Field, "reason", e.Reason)
}

// stripSecret is stripManagedFields for Secrets, and empties those that
// cannot be gateway credentials (model.IsCredentialSecret).
func stripSecret(obj any) (any, error) {
	if sec, ok := obj.(*corev1.Secret); ok && !model.IsCredentialSecret(sec) {
		sec.Data, sec.StringData = nil, nil
		sec.Annotations = nil // kubectl's last-applied copy holds the data too
	}
	return stripManagedFields(obj)
}

// stripManagedFields drops metadata.managedFields before an object enters a
// cache: nothing reads them and they are often the bulk of an object. It runs
// on objects fresh from the wire, before anything else can see them.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil && m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// stripToMetadata keeps only the identity of an object of a kind mizzen does
// not implement: it is reported by name, its spec is never read, so an
// EnvoyFilter's patches do not sit in memory.
func stripToMetadata(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		for k := range u.Object {
			if k != "apiVersion" && k != "kind" && k != "metadata" {
				delete(u.Object, k)
			}
		}
		if md, ok := u.Object["metadata"].(map[string]any); ok {
			if ann, ok := md["annotations"].(map[string]any); ok {
				delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
			}
		}
	}
	return stripManagedFields(obj)
}
