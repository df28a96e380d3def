// Command echo runs the e2e echo app (see package echo) until SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	var opts echo.Options
	flag.StringVar(&opts.Service, "service", "echo", "service name to report")
	flag.StringVar(&opts.Version, "version", "v1", "version to report (also in the x-echo-version header)")
	flag.StringVar(&opts.Pod, "pod", "", "pod name to report (default: hostname)")
	flag.IntVar(&opts.FailFirst, "fail-first", 0, "answer 503 to the first N requests")
	flag.DurationVar(&opts.Delay, "delay", 0, "delay before every answer")
	flag.Parse()
	if opts.Pod == "" {
		opts.Pod, _ = os.Hostname()
	}

	s, err := echo.Start(*addr, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "echo: %s/%s (%s) serving on %s\n", opts.Service, opts.Version, opts.Pod, s.Addr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil {
		_ = s.Close()
	}
}
