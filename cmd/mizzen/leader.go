package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaderLease is the Lease in the system namespace that elects the replica
// doing the singleton work (publishing the root to namespaces, patching
// webhook caBundles). Every replica serves xDS and the CA API regardless.
const leaderLease = "mizzen-leader"

// leaderTiming: a dead leader's lease expires after leaseDuration; the others
// retry every retryPeriod, so one takes over within about 12 s of a crash.
type leaderTiming struct {
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

var defaultLeaderTiming = leaderTiming{leaseDuration: 10 * time.Second, renewDeadline: 8 * time.Second, retryPeriod: 2 * time.Second}

// leaderTasks runs tasks while this replica holds the lease, and stops them
// (cancelling their context) when it loses it; then it campaigns again.
type leaderTasks struct {
	log       *slog.Logger
	cfg       *rest.Config
	namespace string
	identity  string
	timing    leaderTiming
	isLeader  prometheus.Gauge

	mu    sync.Mutex
	tasks []func(ctx context.Context)
}

func newLeaderTasks(log *slog.Logger, cfg *rest.Config, namespace string, reg prometheus.Registerer) *leaderTasks {
	host, _ := os.Hostname()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mizzen_leader",
		Help: "1 while this replica holds the " + leaderLease + " Lease and does the singleton work."})
	reg.MustRegister(g)
	return &leaderTasks{log: log.With("lease", namespace+"/"+leaderLease), cfg: cfg, namespace: namespace,
		identity: fmt.Sprintf("%s_%d_%s", host, os.Getpid(), rand.String(5)), timing: defaultLeaderTiming, isLeader: g}
}

// add registers a task; call before run.
func (l *leaderTasks) add(task func(ctx context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tasks = append(l.tasks, task)
}

func (l *leaderTasks) run(ctx context.Context) {
	client, err := kubernetes.NewForConfig(l.cfg)
	if err != nil {
		l.log.Error("leader election: client", "err", err)
		return
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.namespace, Name: leaderLease},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   l.timing.leaseDuration,
			RenewDeadline:   l.timing.renewDeadline,
			RetryPeriod:     l.timing.retryPeriod,
			ReleaseOnCancel: true,
			Name:            leaderLease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					l.isLeader.Set(1)
					l.log.Info("leading: doing the singleton work", "identity", l.identity)
					l.mu.Lock()
					tasks := append([]func(context.Context){}, l.tasks...)
					l.mu.Unlock()
					var wg sync.WaitGroup
					for _, t := range tasks {
						wg.Add(1)
						go func() { defer wg.Done(); t(ctx) }()
					}
					wg.Wait()
				},
				OnStoppedLeading: func() {
					l.isLeader.Set(0)
					l.log.Info("not leading", "identity", l.identity)
				},
				OnNewLeader: func(id string) {
					if id != l.identity {
						l.log.Info("leader elected", "leader", id)
					}
				},
			},
		})
		if err != nil {
			l.log.Error("leader election", "err", err)
			return
		}
		le.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(l.timing.retryPeriod):
		}
	}
}
