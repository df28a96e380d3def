package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/certs/kubestore"
	"github.com/mizzenmesh/mizzen/pkg/authn"
	"github.com/mizzenmesh/mizzen/pkg/memtrim"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/file"
	"github.com/mizzenmesh/mizzen/pkg/source/kube"
	mizzenversion "github.com/mizzenmesh/mizzen/pkg/version"
	"github.com/mizzenmesh/mizzen/xds"
)

type serveOptions struct {
	configDir          string
	kubeconfig         string
	systemNamespace    string
	discoverySelectors []string
	xdsAddr            string
	monitoringAddr     string
	logLevel           string

	secureXDSAddr       string
	servingNames        []string
	caDir               string
	trustDomain         string
	workloadCertTTL     time.Duration
	insecureDevIdentity bool

	identityReviewInterval time.Duration
	secureMaxConnAge       time.Duration
	tokenReviewQPS         float32
	tokenReviewBurst       int
	sendBudgetMiB          int

	webhook webhookOptions // cmd/mizzen/webhook.go
}

func newServeCommand() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane",
		Long: "Run the control plane. With --config-dir it serves a watched directory of Kubernetes\n" +
			"and Istio YAML (no cluster needed). With --kubeconfig, or when running in a pod (in-cluster\n" +
			"config) without --config-dir, it watches the cluster: Namespaces, Services, EndpointSlices,\n" +
			"Pods, ServiceAccounts, the mesh ConfigMap (istio in istio-system, key mesh) and Istio's\n" +
			"networking and security resources.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config-dir", "", "directory of Kubernetes and Istio YAML to serve (watched)")
	f.StringVar(&o.systemNamespace, "system-namespace", "istio-system", "Kubernetes mode: namespace of the CA Secrets (cacerts, istio-ca-secret)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to watch (Kubernetes mode); in a pod the in-cluster config is used without it")
	f.StringArrayVar(&o.discoverySelectors, "discovery-selectors", nil,
		"Kubernetes mode: only namespaces whose labels match this selector (e.g. istio-discovery=enabled) are served; repeat for any of several (default: all namespaces)")
	f.StringVar(&o.xdsAddr, "xds-addr", "127.0.0.1:15010", "plaintext gRPC xDS (ADS) listen address")
	f.StringVar(&o.monitoringAddr, "monitoring-addr", "127.0.0.1:15014", "HTTP listen address for /ready, /metrics and /debug")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.secureXDSAddr, "secure-xds-addr", "127.0.0.1:15012",
		"TLS gRPC listen address for ADS with workload certificates (SDS) and Istio's CSR API; callers prove their identity with a service-account token (empty: disabled)")
	f.StringSliceVar(&o.servingNames, "serving-names", defaultServingNames, "DNS names and IPs in mizzen's own certificate on the secure port")
	f.StringVar(&o.caDir, "ca-dir", "", "cluster-less mode: directory keeping the CA (created once; Istio's plug-in file names are honoured) (default ~/.mizzen/ca)")
	f.StringVar(&o.trustDomain, "trust-domain", certs.DefaultTrustDomain, "trust domain of workload identities (spiffe://<trust-domain>/ns/<ns>/sa/<sa>)")
	f.DurationVar(&o.workloadCertTTL, "workload-cert-ttl", certs.DefaultCertTTL, "lifetime of workload certificates; they are renewed at about half of it")
	f.BoolVar(&o.insecureDevIdentity, "insecure-dev-identity", false,
		"cluster-less development only: give proxies that prove no identity a certificate for the namespace and service account their node metadata claims")
	f.DurationVar(&o.identityReviewInterval, "identity-review-interval", xds.DefaultIdentityReviewInterval,
		"how often the identity of an open secure xDS stream is checked again with TokenReview (also before each certificate it is sent); a revoked identity's stream is ended")
	f.DurationVar(&o.secureMaxConnAge, "secure-max-connection-age", 30*time.Minute,
		"maximum age of a connection to the secure port (±10% jitter, then 10 s grace), as istiod's keepaliveMaxServerConnectionAge; 0: no limit")
	f.Float32Var(&o.tokenReviewQPS, "token-review-qps", 50, "QPS of the Kubernetes client that sends TokenReviews (its own, apart from the informers')")
	f.IntVar(&o.tokenReviewBurst, "token-review-burst", 100, "burst of the Kubernetes client that sends TokenReviews")
	f.IntVar(&o.sendBudgetMiB, "xds-send-budget-mib", 64,
		"MiB of large xDS responses (16 KiB and up) that may be sent and not yet ACKed at once, over all proxies; the rest wait their turn, so a fleet's warm-up cannot flood the host's TCP buffers")
	addWebhookFlags(f, &o.webhook)
	return cmd
}

func serve(ctx context.Context, o serveOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	kubeCfg, err := kubeConfig(o)
	if err != nil {
		return err
	}
	if kubeCfg == nil {
		if len(o.discoverySelectors) > 0 {
			return errors.New("--discovery-selectors needs Kubernetes mode (--kubeconfig or in-cluster)")
		}
		if o.configDir == "" {
			return errors.New("--config-dir is required (or --kubeconfig, or run in a pod for in-cluster config)")
		}
		if st, err := os.Stat(o.configDir); err != nil || !st.IsDir() {
			return fmt.Errorf("--config-dir %s: not a readable directory", o.configDir)
		}
	}
	selectors, err := parseSelectors(o.discoverySelectors)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := xds.NewMetrics(reg)
	if o.insecureDevIdentity && kubeCfg != nil {
		return fmt.Errorf("--insecure-dev-identity is for cluster-less mode only; in a cluster proxies prove their identity with service-account tokens")
	}
	caOpts := certs.Options{TrustDomain: o.trustDomain, DefaultTTL: o.workloadCertTTL}
	ca := newCAHolder()
	if kubeCfg == nil && o.insecureDevIdentity {
		fileCA, err := loadFileCA(ctx, o.caDir, caOpts)
		if err != nil {
			return err
		}
		ca.set(fileCA)
	}
	if o.identityReviewInterval <= 0 {
		o.identityReviewInterval = xds.DefaultIdentityReviewInterval
	}
	pacer := memtrim.NewPacer(log)
	server := xds.New(xds.Options{Logger: log, Metrics: metrics, CA: ca.get, CertTTL: o.workloadCertTTL,
		TrustDomain: o.trustDomain, InsecureDevIdentity: o.insecureDevIdentity,
		IdentityReviewInterval: o.identityReviewInterval, SendBudget: int64(o.sendBudgetMiB) << 20, Pushes: pacer})

	xdsLis, err := net.Listen("tcp", o.xdsAddr)
	if err != nil {
		return fmt.Errorf("xDS listener: %w", err)
	}
	monLis, err := net.Listen("tcp", o.monitoringAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("monitoring listener: %w", err)
	}
	secureLis, err := listenSecure(o.secureXDSAddr)
	if err != nil {
		xdsLis.Close()
		monLis.Close()
		return err
	}
	closeListeners := func() {
		xdsLis.Close()
		monLis.Close()
		if secureLis != nil {
			secureLis.Close()
		}
	}
	// Who may use the secure port: service-account tokens in a cluster; in
	// cluster-less development with --insecure-dev-identity anyone (identity
	// from node metadata); else nobody, so it is not opened.
	var auth authn.Authenticator
	if kubeCfg != nil {
		if auth, err = tokenReviewer(kubeCfg, o, reg); err != nil {
			closeListeners()
			return err
		}
	} else if secureLis != nil && !o.insecureDevIdentity {
		log.Info("secure xDS port not opened: cluster-less mode has no way to check identities (see --insecure-dev-identity)")
		secureLis.Close()
		secureLis = nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	// Heap a burst (a fleet connecting, a change to every proxy) needed goes
	// back to the OS once the burst is over (pkg/memtrim).
	run(func() { memtrim.Run(ctx, memtrim.Options{Logger: log}) })
	// Collections that endpoint pushes would run into happen before them.
	run(func() { pacer.Run(ctx) })
	if prev, ok := memtrim.ApplyGCPercent(os.Getenv); ok {
		log.Debug("GC percent set (GOGC unset)", "gogc", memtrim.GCPercent, "was", prev)
	}

	reporter := &errorReporter{log: log, metrics: metrics}
	var version atomic.Uint64
	// sourceErrors, when set, are the config source's own current errors
	// (file mode: parse errors, duplicates), already logged and counted as
	// they appear; they join the snapshot's for the debug views.
	var sourceErrors func() []model.ConfigError
	apply := func(in model.Inputs) {
		snap := model.Build(&in, version.Add(1))
		reporter.report(append(snap.Errors, trustDomainMismatch(snap.Mesh.GetTrustDomain(), o.trustDomain)...))
		if sourceErrors != nil {
			snap.Errors = slices.Concat(snap.Errors, sourceErrors())
		}
		server.Update(snap)
	}
	// sourceErr is set when the config source cannot run; serve then stops
	// and returns it.
	var sourceErr error
	// readyChecks gate /ready besides the first snapshot.
	var readyChecks []func() error
	sourceAttrs := []any{"config_dir", o.configDir}
	if kubeCfg == nil {
		src := file.New(o.configDir, file.Options{Logger: log, OnError: func(e *file.Error) { reportFileError(log, metrics, e) }})
		sourceErrors = func() []model.ConfigError {
			var out []model.ConfigError
			for _, e := range src.Errors() {
				out = append(out, e.ConfigError())
			}
			return out
		}
		in, errs := src.Load()
		for _, e := range errs {
			reportFileError(log, metrics, e)
		}
		apply(in)
		run(func() { server.Run(ctx) })
		run(func() {
			if err := src.Run(ctx, apply); err != nil {
				log.Error("watching config directory failed", "err", err)
			}
		})
	} else {
		// Nothing is applied before the caches have synced, so /ready stays
		// 503 until the first snapshot of the whole cluster is built.
		src, err := kube.New(kubeCfg, kube.Options{Logger: log, Namespaces: selectors, OnError: func(e kube.Error) {
			log.Error("config object skipped", "kind", e.Kind, "namespace", e.Namespace, "name", e.Name,
				"resourceVersion", e.ResourceVersion, "field", e.Field, "reason", e.Reason)
			metrics.ConfigError(e.Kind, "DecodeError")
		}})
		if err != nil {
			closeListeners()
			return err
		}
		sourceAttrs = []any{"kubernetes", kubeCfg.Host}
		// The mesh's CA: the plug-in CA in Secret cacerts, else the self-signed
		// root kept in istio-ca-secret (replicas agree on one root), published
		// to every namespace as ConfigMap istio-ca-root-cert. Nothing served
		// yet needs it, so a missing system namespace or a denied Secret is
		// retried in the background instead of stopping xDS.
		run(func() { runClusterCA(ctx, log, kubeCfg, o.systemNamespace, caOpts, ca.set) })
		// Singleton work runs on the replica holding the Lease.
		leader := newLeaderTasks(log, kubeCfg, o.systemNamespace, reg)
		leader.add(func(ctx context.Context) { publishRoot(ctx, log, kubeCfg, ca) })
		webhookReady, err := startWebhooks(ctx, log, kubeCfg, o, ca, reg, run, leader.add)
		if webhookReady != nil {
			readyChecks = append(readyChecks, webhookReady)
		}
		if err != nil {
			closeListeners()
			return err
		}
		run(func() { leader.run(ctx) })
		if len(o.discoverySelectors) > 0 {
			sourceAttrs = append(sourceAttrs, "discovery_selectors", o.discoverySelectors)
		}
		run(func() { server.Run(ctx) })
		run(func() {
			if err := src.Run(ctx, apply); err != nil {
				log.Error("watching the cluster failed", "err", err)
				sourceErr = err
				cancel()
			}
		})
	}

	grpcServer := grpc.NewServer(xds.GRPCServerOptions()...)
	server.Register(ctx, grpcServer)
	run(func() {
		if err := grpcServer.Serve(xdsLis); err != nil {
			log.Error("xDS server stopped", "err", err)
		}
	})
	var secureServer *grpc.Server
	if secureLis != nil {
		secureServer = newSecureServer(log, reg, ca, o.servingNames, o.secureMaxConnAge, auth, server, ctx)
		run(func() {
			if err := secureServer.Serve(gateSecureListener(auth, secureLis)); err != nil {
				log.Error("secure xDS server stopped", "err", err)
			}
		})
	}
	httpServer := &http.Server{Handler: monitoringMux(reg, server, readyChecks...), ReadHeaderTimeout: 10 * time.Second}
	run(func() {
		if err := httpServer.Serve(monLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("monitoring server stopped", "err", err)
		}
	})
	listening := []any{"xds", "grpc://" + xdsLis.Addr().String()}
	if secureLis != nil {
		listening = append(listening, "secure_xds", "grpcs://"+secureLis.Addr().String())
	}
	listening = append(listening,
		"metrics", "http://"+monLis.Addr().String()+"/metrics",
		"debug", "http://"+monLis.Addr().String()+"/debug/")
	log.Info("mizzen serving", append(listening, sourceAttrs...)...)

	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = httpServer.Shutdown(shutdownCtx)
	for _, g := range []*grpc.Server{grpcServer, secureServer} {
		if g == nil {
			continue
		}
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-shutdownCtx.Done():
			g.Stop() // xDS streams never end on their own
		}
	}
	wg.Wait()
	return sourceErr
}

// kubeConfig picks the mode: a cluster reached through --kubeconfig, or through
// the in-cluster config when running in a pod and given neither --config-dir
// nor --kubeconfig. It returns nil for file mode.
func kubeConfig(o serveOptions) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case o.kubeconfig != "" && o.configDir != "":
		return nil, errors.New("--config-dir and --kubeconfig exclude each other")
	case o.kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", o.kubeconfig, err)
		}
	case o.configDir == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
	default:
		return nil, nil
	}
	// client-go's default of 5 QPS would pace the initial lists and the
	// re-lists after an apiserver restart; informers make few requests.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cfg.UserAgent = "mizzen/" + mizzenversion.Version
	return cfg, nil
}

// parseSelectors reads --discovery-selectors: each a label selector in
// kubectl's syntax (`istio-discovery=enabled`, `env in (prod,staging)`,
// `!legacy`); a namespace matching any of them is in scope.
func parseSelectors(in []string) ([]metav1.LabelSelector, error) {
	var out []metav1.LabelSelector
	for _, s := range in {
		ls, err := metav1.ParseToLabelSelector(s)
		if err != nil {
			return nil, fmt.Errorf("--discovery-selectors %q: %w", s, err)
		}
		out = append(out, *ls)
	}
	return out, nil
}

// trustDomainMismatch: the CA signs identities in --trust-domain (it must
// know it before any config is read); a mesh config asking for another is
// reported rather than silently ignored, since principals in policies would
// then never match.
func trustDomainMismatch(mesh, flag string) []model.ConfigError {
	// The model fills Istio's default (cluster.local) when the mesh config
	// says nothing, so that value cannot be told from "not set".
	if mesh == "" || mesh == flag || mesh == certs.DefaultTrustDomain {
		return nil
	}
	return []model.ConfigError{{Kind: "MeshConfig", Field: "trustDomain", Code: "TrustDomainIgnored", Warning: true,
		Message: fmt.Sprintf("mizzen issues identities in trust domain %q (--trust-domain); meshConfig.trustDomain %q is not applied: start mizzen with --trust-domain %s", flag, mesh, mesh)}}
}

// reportFileError logs and counts one error of the config directory.
func reportFileError(log *slog.Logger, metrics *xds.Metrics, e *file.Error) {
	ce := e.ConfigError()
	msg := "config file skipped; its previous good state is kept"
	if e.Code == file.CodeDuplicate {
		msg = "config object defined twice; the definition seen first is served, this one skipped"
	}
	log.Error(msg, "file", e.File, "doc", e.Doc, "line", e.Line, "code", ce.Code, "err", e.Error())
	metrics.ConfigError(ce.Kind, ce.Code)
}

// errorReporter logs and counts each config error once, when it first appears,
// rather than on every rebuild.
type errorReporter struct {
	log     *slog.Logger
	metrics *xds.Metrics
	mu      sync.Mutex
	seen    map[string]bool
}

func (r *errorReporter) report(errs []model.ConfigError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := map[string]bool{}
	for _, e := range errs {
		key := e.Error()
		now[key] = true
		if r.seen[key] {
			continue
		}
		r.metrics.ConfigError(e.Kind, e.Code)
		attrs := []any{"kind", e.Kind, "namespace", e.Namespace, "name", e.Name, "field", e.Field, "code", e.Code, "reason", e.Message}
		if e.Warning {
			r.log.Warn("config warning", attrs...)
		} else {
			r.log.Error("config object skipped", attrs...)
		}
	}
	r.seen = now
}

// runClusterCA loads (or, first time, creates and stores) the mesh's CA from
// the cluster's Secrets in the system namespace, retrying with backoff. Every
// replica loads it (all of them sign); racing replicas agree on one root
// because the Secret is created, never overwritten.
func runClusterCA(ctx context.Context, log *slog.Logger, cfg *rest.Config, systemNamespace string, opts certs.Options, ready func(*certs.CA)) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("CA: kubernetes client", "err", err)
		return
	}
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		loadCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ca, err := kubestore.LoadCA(loadCtx, client, systemNamespace, opts)
		cancel()
		if err == nil {
			log.Info("CA ready", "namespace", systemNamespace, "plugin", ca.PlugIn())
			ready(ca)
			return
		}
		log.Error("CA: cannot load or create the root; retrying", "namespace", systemNamespace, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// publishRoot keeps istio-ca-root-cert in every namespace (the leader's job).
func publishRoot(ctx context.Context, log *slog.Logger, cfg *rest.Config, ca *caHolder) {
	root := ca.wait(ctx)
	if root == nil {
		return
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("CA: kubernetes client", "err", err)
		return
	}
	pub := &kubestore.RootPublisher{Client: client, RootCertPEM: root.RootCertPEM(), Logger: log}
	if err := pub.Run(ctx); err != nil {
		log.Error("CA: publishing the root certificate failed", "err", err)
	}
}
