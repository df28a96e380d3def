// Command csrload puts unauthenticated load on a control plane's secure port
// (15012): N callers of Istio's CSR API with garbage tokens, each on its own
// TLS connection, calling back to back for a while, and one legitimate caller
// with a real service-account token asking for a certificate at a steady
// pace. It reports the legitimate caller's latency (p50, p99, max) and
// failures, the garbage calls by outcome, and with --pid the server's RSS
// before, at peak and after. It speaks only the CSR API, so it drives mizzen
// and istiod alike.
//
//	csrload --target 127.0.0.1:15012 --ca-file root-cert.pem --callers 1000 --duration 20s \
//	  --legit-token-file token --garbage-sources 127.0.0.2 --pid $(pgrep -n mizzen)
//
// Exit status: 0 when every legitimate CSR succeeded, 2 when one failed (the
// report is still printed), 1 on errors.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/cmd/csrload/loadgen"
)

var errLegitFailed = errors.New("a legitimate CSR failed")

func main() {
	err := newCommand(os.Stdout, os.Stderr).Execute()
	switch {
	case err == nil:
	case errors.Is(err, errLegitFailed):
		os.Exit(2)
	default:
		os.Exit(1)
	}
}

type options struct {
	cfg            loadgen.Config
	caFile         string
	legitTokenFile string
	json           bool
	logLevel       string
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:           "csrload",
		Short:         "Garbage-token callers against Istio's CSR API, timing a legitimate caller",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := run(cmd.Context(), o, stdout, stderr)
			if err != nil && !errors.Is(err, errLegitFailed) {
				fmt.Fprintln(stderr, "csrload:", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	c := &o.cfg
	f.StringVar(&c.Target, "target", "127.0.0.1:15012", "the control plane's secure port (TLS gRPC, CSR API)")
	f.StringVar(&o.caFile, "ca-file", "", "PEM root that verifies the server's certificate (e.g. istio-ca-root-cert's root-cert.pem); empty: not verified")
	f.StringVar(&c.ServerName, "server-name", "istiod.istio-system.svc", "TLS server name")
	f.IntVar(&c.Callers, "callers", 1000, "garbage-token callers, each on its own TLS connection, calling back to back")
	f.DurationVar(&c.Duration, "duration", 20*time.Second, "how long the load runs")
	f.StringVar(&c.Garbage, "garbage", loadgen.GarbageJWT, "garbage tokens: jwt (a new forged JWT per call), random (not a JWT), same (one forged JWT)")
	f.StringSliceVar(&c.GarbageSources, "garbage-sources", nil, "local IPs the garbage connections come from, in turn (e.g. 127.0.0.2,127.0.0.3); default: the system's choice")
	f.DurationVar(&c.CallTimeout, "call-timeout", 0, "deadline of each garbage call (default 5s)")
	f.StringVar(&o.legitTokenFile, "legit-token-file", "", "service-account token (audience istio-ca) of the legitimate caller; empty: no legitimate caller")
	f.StringVar(&c.LegitSource, "legit-source", "", "local IP of the legitimate caller's connection")
	f.DurationVar(&c.LegitInterval, "legit-interval", 0, "time between the legitimate caller's CSRs (default 100ms)")
	f.DurationVar(&c.LegitTimeout, "legit-timeout", 0, "deadline of each legitimate CSR (default 10s)")
	f.IntVar(&c.Pid, "pid", 0, "server process whose RSS is sampled (Linux /proc); 0: none")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.StringVar(&o.logLevel, "log-level", "warn", "log level on stderr")
	return cmd
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	c := o.cfg
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.caFile != "" {
		pemData, err := os.ReadFile(o.caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pemData) {
			return fmt.Errorf("--ca-file %s: no PEM certificate", o.caFile)
		}
	}
	if o.legitTokenFile != "" {
		tok, err := os.ReadFile(o.legitTokenFile)
		if err != nil {
			return fmt.Errorf("--legit-token-file: %w", err)
		}
		c.LegitToken = strings.TrimSpace(string(tok))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, c)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if rep.LegitFailures > 0 {
		return errLegitFailed
	}
	return nil
}

func printReport(w io.Writer, r *loadgen.Report) {
	fmt.Fprintf(w, "csrload: %d garbage callers (%s tokens) for %.1fs against %s\n", r.Callers, r.Garbage, r.Duration, r.Target)
	if r.LegitCalls > 0 {
		fmt.Fprintf(w, "legit:   %d CSRs, %d failed, p50 %.1fms p99 %.1fms max %.1fms\n",
			r.LegitCalls, r.LegitFailures, r.LegitP50Ms, r.LegitP99Ms, r.LegitMaxMs)
		for _, e := range r.LegitErrors {
			fmt.Fprintf(w, "  failed: %s\n", e)
		}
	}
	var parts []string
	for _, k := range r.Codes() {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.GarbageCalls[k]))
	}
	fmt.Fprintf(w, "garbage: %.0f calls/s, %d callers answered; %s\n", r.GarbageCallsRate, r.Connected, strings.Join(parts, ", "))
	if r.RSSIdle > 0 {
		mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
		fmt.Fprintf(w, "rss:     idle %.0f MiB, peak %.0f MiB (+%.0f), final %.0f MiB\n",
			mib(r.RSSIdle), mib(r.RSSPeak), mib(r.RSSPeak)-mib(r.RSSIdle), mib(r.RSSFinal))
	}
}
