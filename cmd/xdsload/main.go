// Command xdsload simulates N Envoy proxies with Istio node IDs on plain ADS
// streams, state of the world (default) or incremental (--mode delta), and measures how fast a control plane converges them: the time to
// a first full config (CDS, LDS, EDS, RDS ACKed), and for each of K config changes
// the time until every proxy ACKed a new version, plus the control plane's CPU
// and RSS when given its pid. It speaks only standard xDS, so it drives mizzen
// and istiod alike.
//
//	xdsload --xds-addr 127.0.0.1:15010 -n 1000 --pid $(pgrep -n mizzen) \
//	  --change-file mesh/vs-svc-0.yaml --change-file-a variants/a.yaml --change-file-b variants/b.yaml \
//	  --change-count 5 --json
//
// Exit status: 0 when every proxy converged every time, 2 when some did not
// (the report is still printed), 1 on errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
)

// errNotConverged makes main exit with status 2 after the report was printed.
var errNotConverged = errors.New("not every proxy converged")

type options struct {
	xdsAddr        string
	proxies        int
	namespace      string
	namespaces     int
	workloads      int
	workloadPrefix string
	sameLabels     bool
	istioVersion   string
	router         bool
	serviceAccount string
	clusterID      string
	conns          int
	ramp           time.Duration
	maxRecvBytes   int
	mode           string
	delta          bool
	grpcTransport  bool

	duration       time.Duration
	initialTimeout time.Duration
	timeout        time.Duration
	hold           time.Duration

	changeFile     string
	changeFileA    string
	changeFileB    string
	changeCmd      string
	changeCount    int
	changeInterval time.Duration
	settle         time.Duration

	pid            int
	sampleInterval time.Duration

	json       bool
	logLevel   string
	cpuProfile string
	// cpuProfileChanges starts the profile after the warm-up.
	cpuProfileChanges bool
	memProfile        string
}

func main() {
	err := newCommand(os.Stdout, os.Stderr).Execute()
	switch {
	case err == nil:
	case errors.Is(err, errNotConverged):
		os.Exit(2)
	default:
		os.Exit(1)
	}
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "xdsload",
		Short: "Simulate N Envoy proxies on ADS and measure xDS convergence, CPU and RSS of a control plane",
		Long: `xdsload opens N ADS streams (plaintext gRPC) as N simulated Istio proxies that
subscribe and ACK like Envoy (CDS+LDS wildcard, then EDS and RDS for what they name):
state of the world (--mode sotw, the default) or incremental (--mode delta, or --delta:
DeltaAggregatedResources, per-resource versions and removals, ACK by nonce, EDS/RDS
names (un)subscribed as clusters and listeners come and go).

It reports the initial convergence (all proxies have CDS, LDS, EDS and RDS ACKed) and,
with --change-file or --change-cmd, K changes: for each, the time from the change until
each proxy ACKed a new version of any type, and until all did.

--change-file P --change-file-a A --change-file-b B writes A's content to P on odd
changes and B's on even ones (atomically: temp file + rename); start with B's content in
P so that the first change changes something. --change-cmd runs a shell command instead,
with XDSLOAD_CHANGE=<k> and XDSLOAD_VARIANT=<a|b> in its environment.

Exit status: 0 all converged, 2 some proxy did not (report still printed), 1 error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := run(cmd.Context(), o, stdout, stderr)
			if err != nil && !errors.Is(err, errNotConverged) {
				fmt.Fprintln(stderr, "xdsload:", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.xdsAddr, "xds-addr", "127.0.0.1:15010", "plaintext gRPC xDS address of the control plane")
	f.IntVarP(&o.proxies, "proxies", "n", 100, "number of simulated proxies (one ADS stream each)")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of the simulated pods (the first one with --namespaces)")
	f.IntVar(&o.namespaces, "namespaces", 1, "spread the workloads over this many namespaces: <namespace>, <namespace>-1, …")
	f.IntVar(&o.workloads, "workloads", 0, "distinct workloads (Deployments) the sidecars are replicas of, each with its own app/version/pod-template-hash labels (0: proxies/2)")
	f.StringVar(&o.workloadPrefix, "workload-prefix", "load", "workload w is Deployment <prefix>-<w> (its app label)")
	f.StringVar(&o.istioVersion, "istio-version", "1.31.0", "ISTIO_VERSION node metadata of the workload sidecars, as pilot-agent sends it (\"-\": none)")
	f.BoolVar(&o.sameLabels, "same-labels", false, "every sidecar gets app=load, version=v1 (xdsload's fleet before it simulated workloads)")
	f.BoolVar(&o.router, "router", false, "simulate gateways (router~… node IDs, LABELS istio=ingressgateway) instead of sidecars")
	f.StringVar(&o.serviceAccount, "service-account", "default", "SERVICE_ACCOUNT node metadata")
	f.StringVar(&o.clusterID, "cluster-id", "Kubernetes", "CLUSTER_ID node metadata")
	f.IntVar(&o.conns, "conns", 0, "gRPC connections to spread the streams over (0: one per proxy, like real Envoys)")
	f.DurationVar(&o.ramp, "ramp", 0, "spread the stream starts evenly over this duration (0: all at once)")
	f.IntVar(&o.maxRecvBytes, "max-recv-bytes", 256<<20, "largest accepted xDS response message, in bytes")
	f.StringVar(&o.mode, "mode", "sotw", "xDS protocol of the proxies: sotw (StreamAggregatedResources) or delta (DeltaAggregatedResources)")
	f.BoolVar(&o.delta, "delta", false, "same as --mode delta")
	f.BoolVar(&o.grpcTransport, "grpc-transport", false, "delta streams on gRPC's client instead of the lean HTTP/2 transport (about twice the load client's CPU per response)")

	f.DurationVar(&o.duration, "duration", 10*time.Minute, "hard limit on the whole run; what was measured by then is reported")
	f.DurationVar(&o.initialTimeout, "initial-timeout", 2*time.Minute, "how long to wait for every proxy's first full config")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "per change: a proxy that hasn't ACKed a new version by then counts as not converged")
	f.DurationVar(&o.hold, "hold", 0, "keep the streams open this long after the measurements (e.g. to inspect the control plane)")

	f.StringVar(&o.changeFile, "change-file", "", "config file to rewrite for each change (needs --change-file-a and --change-file-b)")
	f.StringVar(&o.changeFileA, "change-file-a", "", "content written to --change-file on odd changes (1, 3, …)")
	f.StringVar(&o.changeFileB, "change-file-b", "", "content written to --change-file on even changes (2, 4, …)")
	f.StringVar(&o.changeCmd, "change-cmd", "", "shell command that makes one change (alternative to --change-file); gets XDSLOAD_CHANGE and XDSLOAD_VARIANT")
	f.IntVar(&o.changeCount, "change-count", 5, "number of changes to make (with --change-file or --change-cmd)")
	f.DurationVar(&o.changeInterval, "change-interval", 2*time.Second, "quiet time before each change")
	f.DurationVar(&o.settle, "settle", 500*time.Millisecond, "with --pid: a change's CPU is measured from the trigger until no response arrived for this long")

	f.IntVar(&o.pid, "pid", 0, "control plane process to measure CPU seconds and RSS of (Linux /proc); 0: don't")
	f.DurationVar(&o.sampleInterval, "sample-interval", 100*time.Millisecond, "RSS sampling interval for --pid")

	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.StringVar(&o.logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of xdsload itself to this file")
	f.BoolVar(&o.cpuProfileChanges, "cpuprofile-changes", false, "with --cpuprofile: profile the changes only, from the end of the warm-up")
	f.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of xdsload itself (at the end, streams still open) to this file")
	return cmd
}

// trigger returns the trigger of change k, or nil when no change mode is set.
type triggerFunc func(k int) func(context.Context) error

func (o *options) validate() (triggerFunc, error) {
	if o.proxies <= 0 {
		return nil, fmt.Errorf("--proxies must be > 0")
	}
	if o.timeout <= 0 || o.initialTimeout <= 0 || o.duration <= 0 {
		return nil, fmt.Errorf("--timeout, --initial-timeout and --duration must be > 0")
	}
	switch {
	case o.delta && o.mode != "sotw" && o.mode != "delta":
		return nil, fmt.Errorf("--mode %q: want sotw or delta", o.mode)
	case o.delta:
		o.mode = "delta"
	case o.mode != "sotw" && o.mode != "delta":
		return nil, fmt.Errorf("--mode %q: want sotw or delta", o.mode)
	}
	switch {
	case o.changeFile != "" && o.changeCmd != "":
		return nil, fmt.Errorf("--change-file and --change-cmd are exclusive")
	case o.changeFile != "":
		if o.changeFileA == "" || o.changeFileB == "" {
			return nil, fmt.Errorf("--change-file needs --change-file-a and --change-file-b")
		}
		ft, err := loadclient.NewFileToggler(o.changeFile, o.changeFileA, o.changeFileB)
		if err != nil {
			return nil, err
		}
		return ft.Trigger, nil
	case o.changeCmd != "":
		cmd := o.changeCmd
		return func(k int) func(context.Context) error { return loadclient.CommandTrigger(cmd, k) }, nil
	case o.changeFileA != "" || o.changeFileB != "":
		return nil, fmt.Errorf("--change-file-a/--change-file-b need --change-file")
	}
	return nil, nil
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	trigger, err := o.validate()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()

	client, err := loadclient.New(loadclient.Config{
		Addr:           o.xdsAddr,
		Proxies:        o.proxies,
		Namespace:      o.namespace,
		Namespaces:     o.namespaces,
		Workloads:      o.workloads,
		WorkloadPrefix: o.workloadPrefix,
		SameLabels:     o.sameLabels,
		IstioVersion:   o.istioVersion,
		Router:         o.router,
		ServiceAccount: o.serviceAccount,
		ClusterID:      o.clusterID,
		Conns:          o.conns,
		Ramp:           o.ramp,
		MaxRecvBytes:   o.maxRecvBytes,
		Delta:          o.mode == "delta",
		GRPCTransport:  o.grpcTransport,
		Logger:         log,
	})
	if err != nil {
		return err
	}

	var sampler *loadclient.ProcSampler
	var rssStart uint64
	if o.pid > 0 {
		sampler, err = loadclient.StartProcSampler(ctx, o.pid, o.sampleInterval)
		if err != nil {
			return fmt.Errorf("--pid %d: %w", o.pid, err)
		}
		rssStart = sampler.Current().RSSFinal
	}

	stopProfile := func() {}
	startProfile := func() error {
		if o.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	defer func() { stopProfile() }()
	if !o.cpuProfileChanges {
		if err := startProfile(); err != nil {
			return err
		}
	}
	start := time.Now()
	selfCPU0, _ := loadclient.CPUSeconds(os.Getpid())
	if err := client.Start(ctx); err != nil {
		if sampler != nil {
			sampler.Stop()
		}
		return err
	}
	defer client.Close()
	log.Info("streams started", "proxies", o.proxies, "xds_addr", o.xdsAddr, "mode", o.mode)

	m := measurement{n: o.proxies, mode: o.mode, workloads: client.Config().Workloads, namespaces: client.Config().Namespaces}
	if o.sameLabels || o.router {
		m.workloads = 0
	}
	m.initial = client.WaitInitial(ctx, o.initialTimeout)
	log.Info("initial config", "converged", m.initial.Converged, "of", o.proxies, "took", m.initial.All)
	if o.cpuProfileChanges {
		if err := startProfile(); err != nil {
			return err
		}
	}
	if sampler != nil {
		st := sampler.Current()
		m.cpuInitial = &st.CPUSeconds
		m.rssInitial = st.RSSFinal
	}

	var runErr error
	if trigger != nil {
		for k := 1; k <= o.changeCount; k++ {
			idle0, idleAt := cpuNanos(o.pid), time.Now()
			if !sleep(ctx, o.changeInterval) {
				break
			}
			cpu0, at0 := cpuNanos(o.pid), time.Now()
			if o.pid > 0 && idle0 >= 0 && cpu0 >= idle0 {
				m.idleCPU += float64(cpu0-idle0) / 1e9
				m.idleTime += at0.Sub(idleAt)
			}
			res, err := client.MeasureChange(ctx, trigger(k), o.timeout)
			if err != nil {
				runErr = fmt.Errorf("change %d: %w", k, err)
				break
			}
			cc := changeCPU{seconds: -1}
			if o.pid > 0 {
				client.WaitQuiet(ctx, o.settle, o.timeout)
				if cpu1 := cpuNanos(o.pid); cpu0 >= 0 && cpu1 >= cpu0 {
					cc = changeCPU{seconds: float64(cpu1-cpu0) / 1e9, window: time.Since(at0)}
				}
			}
			log.Info("change", "k", k, "variant", loadclient.Variant(k), "converged", res.Converged, "failed", len(res.Failed), "all_acked", res.AllAcked, "cpu_s", cc.seconds)
			m.changes = append(m.changes, res)
			m.changeCPU = append(m.changeCPU, cc)
		}
	}
	if o.hold > 0 {
		sleep(ctx, o.hold)
	}
	if ctx.Err() != nil && runErr == nil {
		m.truncated = true
	}
	if sampler != nil {
		st := sampler.Stop()
		m.proc = &st
		m.rssStart = rssStart
	}
	m.duration = time.Since(start)
	// What the proxies hold (live heap with every stream still open).
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	m.selfHeap = mem.HeapAlloc
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			log.Warn("heap profile", "err", err)
		}
	}
	client.Close()
	m.counters = client.Counters()
	if selfCPU, err := loadclient.CPUSeconds(os.Getpid()); err == nil {
		m.selfCPU = selfCPU - selfCPU0
	}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		_, m.selfHWM = loadclient.ParseStatusMemory(string(data))
	}

	rep := m.report()
	if runErr != nil {
		rep.Error = runErr.Error()
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeTable(stdout, o.xdsAddr, rep)
	}
	if runErr != nil {
		return runErr
	}
	if !rep.AllConverged {
		return errNotConverged
	}
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuNanos is the precise CPU time of pid so far, -1 without a pid or on errors.
func cpuNanos(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	n, err := loadclient.CPUNanos(pid)
	if err != nil {
		return -1
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
