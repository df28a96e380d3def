// Command mizzen-demo is what `make run` runs: mizzen serving examples/bookinfo
// with its apps and a real Envoy ingress gateway on loopback (pkg/demo). It is
// a separate binary so the production `mizzen` carries no test apps.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mizzenmesh/mizzen/pkg/demo"
)

func main() {
	var o demo.Options
	flag.StringVar(&o.MizzenBin, "mizzen", "", "the mizzen binary (default: mizzen next to this one)")
	flag.StringVar(&o.ConfigDir, "config-dir", "examples/bookinfo", "config directory mizzen serves and watches")
	flag.StringVar(&o.WorkDir, "work-dir", "", "directory for logs, the CA and the gateway bootstrap (default: a temp dir, removed)")
	flag.StringVar(&o.MonitoringAddr, "monitoring-addr", "", "mizzen's monitoring address (/ui/, /debug/; default 127.0.0.1:15014)")
	flag.Parse()
	if o.MizzenBin == "" {
		self, err := os.Executable()
		if err == nil {
			o.MizzenBin = filepath.Join(filepath.Dir(self), "mizzen")
		}
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "mizzen-demo:", err)
		os.Exit(1)
	}
}
