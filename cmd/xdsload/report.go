package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
)

// maxListedFailures bounds the proxy IDs listed per failed phase.
const maxListedFailures = 20

// Report is the machine-readable result (--json).
type Report struct {
	N int `json:"n"`
	// Mode is the proxies' xDS protocol: sotw or delta.
	Mode string `json:"mode"`
	// Workloads is the number of distinct workloads the sidecars belong to
	// (0: every proxy has the same labels, --same-labels or --router);
	// Namespaces how many namespaces they are spread over.
	Workloads  int `json:"workloads"`
	Namespaces int `json:"namespaces"`
	// InitialConvergenceMs is the time from the streams' start until the last
	// proxy had CDS, LDS, EDS and RDS ACKed; null if some never did.
	InitialConvergenceMs *float64 `json:"initial_convergence_ms"`
	InitialConverged     int      `json:"initial_converged"`
	InitialFailed        []string `json:"initial_failed,omitempty"`
	// InitialP50Ms/InitialP99Ms: per-proxy time from its stream open to its full config.
	InitialP50Ms float64 `json:"initial_p50_ms"`
	InitialP99Ms float64 `json:"initial_p99_ms"`

	Changes []ChangeReport `json:"changes"`
	// P50Ms/P99Ms: per-proxy change convergence over all converged proxies × changes.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`

	// Control plane process (--pid); omitted without it.
	CPUSeconds        *float64 `json:"cpu_seconds,omitempty"`
	CPUSecondsInitial *float64 `json:"cpu_seconds_initial,omitempty"`
	RSSBytesPeak      *uint64  `json:"rss_bytes_peak,omitempty"`
	RSSBytesFinal     *uint64  `json:"rss_bytes_final,omitempty"`
	VmHWMBytes        *uint64  `json:"vm_hwm_bytes,omitempty"`
	// RSSBytesStart is the control plane's VmRSS before the streams opened,
	// RSSBytesInitial once every proxy had its first full config, and
	// RSSBytesPerProxy their difference over N: what a connected proxy costs.
	RSSBytesStart    *uint64  `json:"rss_bytes_start,omitempty"`
	RSSBytesInitial  *uint64  `json:"rss_bytes_initial,omitempty"`
	RSSBytesPerProxy *float64 `json:"rss_bytes_per_proxy,omitempty"`
	ProcessExited    bool     `json:"process_exited,omitempty"`
	// CPUSecondsPerChange is the mean of the changes' cpu_seconds (from each
	// trigger until the proxies were quiet for --settle; exact, from schedstat).
	CPUSecondsPerChange *float64 `json:"cpu_seconds_per_change,omitempty"`
	// IdleCPUPerS is the control plane's CPU seconds per second during the
	// quiet intervals before the changes: what a change window costs anyway.
	IdleCPUPerS *float64 `json:"idle_cpu_seconds_per_s,omitempty"`

	ResponsesReceived int64 `json:"responses_received"`
	BytesReceived     int64 `json:"bytes_received"`
	AcksSent          int64 `json:"acks_sent"`
	StreamErrors      int64 `json:"stream_errors"`
	DecodeErrors      int64 `json:"decode_errors"`

	// ClientCPUSeconds is xdsload's own CPU time: on a shared machine it competes
	// with the control plane.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// ClientRSSPeakBytes is xdsload's own VmHWM (initial config responses in
	// flight on every stream at once dominate it).
	ClientRSSPeakBytes uint64 `json:"client_rss_bytes_peak"`
	// ClientHeapBytes is xdsload's live heap after a GC at the end, streams
	// still open: what the simulated proxies hold.
	ClientHeapBytes uint64 `json:"client_heap_bytes"`

	DurationMs   float64 `json:"duration_ms"`
	AllConverged bool    `json:"all_converged"`
	// Truncated: --duration (or a signal) ended the run before all was measured.
	Truncated bool   `json:"truncated,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ChangeReport is one measured change.
type ChangeReport struct {
	Change  int    `json:"change"`
	Variant string `json:"variant"`
	// AllAckedMs is the time from the change until the last proxy ACKed; null if some never did.
	AllAckedMs    *float64 `json:"all_acked_ms"`
	Converged     int      `json:"converged"`
	Failed        int      `json:"failed"`
	FailedProxies []string `json:"failed_proxies,omitempty"`
	P50Ms         float64  `json:"p50_ms"`
	P99Ms         float64  `json:"p99_ms"`
	TriggerMs     float64  `json:"trigger_ms"`
	// CPUSeconds (with --pid) is the control plane's CPU from the trigger
	// until the proxies were quiet for --settle (WindowMs later).
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"`
	WindowMs   *float64 `json:"cpu_window_ms,omitempty"`
}

// changeCPU is the control plane's CPU over one change's window; seconds < 0: unknown.
type changeCPU struct {
	seconds float64
	window  time.Duration
}

type measurement struct {
	n          int
	mode       string
	changeCPU  []changeCPU
	idleCPU    float64
	idleTime   time.Duration
	selfHWM    uint64
	workloads  int
	namespaces int
	rssStart   uint64
	rssInitial uint64
	selfHeap   uint64
	initial    loadclient.InitialResult
	changes    []loadclient.ChangeResult
	cpuInitial *float64
	proc       *loadclient.ProcStats
	counters   loadclient.Counters
	duration   time.Duration
	selfCPU    float64
	truncated  bool
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func msPtr(d time.Duration) *float64 { v := ms(d); return &v }

func limit(ids []string) []string {
	if len(ids) > maxListedFailures {
		return append(ids[:maxListedFailures:maxListedFailures], fmt.Sprintf("… and %d more", len(ids)-maxListedFailures))
	}
	return ids
}

func (m *measurement) report() Report {
	r := Report{
		N:                  m.n,
		Mode:               m.mode,
		Workloads:          m.workloads,
		Namespaces:         m.namespaces,
		ClientRSSPeakBytes: m.selfHWM,
		ClientHeapBytes:    m.selfHeap,
		InitialConverged:   m.initial.Converged,
		InitialFailed:      limit(m.initial.Failed),
		InitialP50Ms:       ms(loadclient.Percentile(m.initial.PerProxy, 50)),
		InitialP99Ms:       ms(loadclient.Percentile(m.initial.PerProxy, 99)),
		Changes:            []ChangeReport{},
		ResponsesReceived:  m.counters.Responses,
		BytesReceived:      m.counters.Bytes,
		AcksSent:           m.counters.Acks,
		StreamErrors:       m.counters.StreamErrors,
		DecodeErrors:       m.counters.DecodeErrors,
		ClientCPUSeconds:   m.selfCPU,
		DurationMs:         ms(m.duration),
		Truncated:          m.truncated,
	}
	r.AllConverged = len(m.initial.Failed) == 0 && m.initial.Converged == m.n
	if r.AllConverged {
		r.InitialConvergenceMs = msPtr(m.initial.All)
	}
	var all []time.Duration
	for i, c := range m.changes {
		cr := ChangeReport{
			Change:        i + 1,
			Variant:       loadclient.Variant(i + 1),
			Converged:     c.Converged,
			Failed:        len(c.Failed),
			FailedProxies: limit(c.Failed),
			P50Ms:         ms(loadclient.Percentile(c.PerProxy, 50)),
			P99Ms:         ms(loadclient.Percentile(c.PerProxy, 99)),
			TriggerMs:     ms(c.TriggerTook),
		}
		if i < len(m.changeCPU) && m.changeCPU[i].seconds >= 0 {
			cpu := m.changeCPU[i].seconds
			cr.CPUSeconds, cr.WindowMs = &cpu, msPtr(m.changeCPU[i].window)
		}
		if len(c.Failed) == 0 {
			cr.AllAckedMs = msPtr(c.AllAcked)
		} else {
			r.AllConverged = false
		}
		all = append(all, c.PerProxy...)
		r.Changes = append(r.Changes, cr)
	}
	r.P50Ms = ms(loadclient.Percentile(all, 50))
	r.P99Ms = ms(loadclient.Percentile(all, 99))
	if p := m.proc; p != nil {
		cpu, peak, final, hwm := p.CPUSeconds, p.RSSPeak, p.RSSFinal, p.VmHWM
		r.CPUSeconds, r.RSSBytesPeak, r.RSSBytesFinal, r.VmHWMBytes = &cpu, &peak, &final, &hwm
		r.CPUSecondsInitial = m.cpuInitial
		r.ProcessExited = p.Exited
		if m.rssStart > 0 && m.rssInitial > 0 {
			start, initial := m.rssStart, m.rssInitial
			per := (float64(initial) - float64(start)) / float64(m.n)
			r.RSSBytesStart, r.RSSBytesInitial, r.RSSBytesPerProxy = &start, &initial, &per
		}
		var sum float64
		var n int
		for _, c := range r.Changes {
			if c.CPUSeconds != nil {
				sum += *c.CPUSeconds
				n++
			}
		}
		if n > 0 {
			mean := sum / float64(n)
			r.CPUSecondsPerChange = &mean
		}
		if m.idleTime > 0 {
			idle := m.idleCPU / m.idleTime.Seconds()
			r.IdleCPUPerS = &idle
		}
	}
	return r
}

func fmtMs(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *p)
}

func mib(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func writeTable(w io.Writer, addr string, r Report) {
	fleet := "all with the same labels"
	if r.Workloads > 0 {
		fleet = fmt.Sprintf("replicas of %d workloads in %d namespace(s)", r.Workloads, r.Namespaces)
	}
	fmt.Fprintf(w, "xdsload: %d %s proxies (%s) -> %s (%.1f s)\n\n", r.N, r.Mode, fleet, addr, r.DurationMs/1000)
	fmt.Fprintf(w, "initial convergence: %s ms, %d/%d proxies; per proxy p50 %.1f ms, p99 %.1f ms\n",
		fmtMs(r.InitialConvergenceMs), r.InitialConverged, r.N, r.InitialP50Ms, r.InitialP99Ms)
	for _, id := range r.InitialFailed {
		fmt.Fprintf(w, "  no full config: %s\n", id)
	}
	if len(r.Changes) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "change\tvariant\tall acked (ms)\tconverged\tfailed\tp50 (ms)\tp99 (ms)\ttrigger (ms)\tcpu (s)\t")
		for _, c := range r.Changes {
			cpu := "-"
			if c.CPUSeconds != nil {
				cpu = fmt.Sprintf("%.3f", *c.CPUSeconds)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t\n",
				c.Change, c.Variant, fmtMs(c.AllAckedMs), c.Converged, c.Failed, c.P50Ms, c.P99Ms, c.TriggerMs, cpu)
		}
		_ = tw.Flush()
		for _, c := range r.Changes {
			for _, id := range c.FailedProxies {
				fmt.Fprintf(w, "  change %d not converged: %s\n", c.Change, id)
			}
		}
		fmt.Fprintf(w, "\nper-proxy change convergence over all changes: p50 %.1f ms, p99 %.1f ms\n", r.P50Ms, r.P99Ms)
	}
	if r.CPUSeconds != nil {
		fmt.Fprintf(w, "\ncontrol plane: cpu %.2f s", *r.CPUSeconds)
		if r.CPUSecondsInitial != nil {
			fmt.Fprintf(w, " (%.2f s until initial convergence)", *r.CPUSecondsInitial)
		}
		fmt.Fprintf(w, ", rss peak %s, final %s, VmHWM %s", mib(*r.RSSBytesPeak), mib(*r.RSSBytesFinal), mib(*r.VmHWMBytes))
		if r.ProcessExited {
			fmt.Fprint(w, " (process exited during the run)")
		}
		fmt.Fprintln(w)
		if r.RSSBytesPerProxy != nil {
			fmt.Fprintf(w, "control plane rss before the streams %s, after initial convergence %s: %.1f KiB per proxy\n",
				mib(*r.RSSBytesStart), mib(*r.RSSBytesInitial), *r.RSSBytesPerProxy/1024)
		}
		if r.CPUSecondsPerChange != nil {
			fmt.Fprintf(w, "control plane cpu per change: %.3f s", *r.CPUSecondsPerChange)
			if r.IdleCPUPerS != nil {
				fmt.Fprintf(w, " (idle: %.3f s/s)", *r.IdleCPUPerS)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "\nresponses %d, received %s, acks %d, stream errors %d, decode errors %d; xdsload's own cpu %.2f s, rss peak %s, live heap %s\n",
		r.ResponsesReceived, mib(uint64(r.BytesReceived)), r.AcksSent, r.StreamErrors, r.DecodeErrors, r.ClientCPUSeconds, mib(r.ClientRSSPeakBytes), mib(r.ClientHeapBytes))
	if r.Truncated {
		fmt.Fprintln(w, "run ended early (--duration or signal): results are partial")
	}
	if r.Error != "" {
		fmt.Fprintln(w, "error:", r.Error)
	}
}
