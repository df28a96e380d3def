// Command echo runs the e2e echo app (see package echo) until SIGINT/SIGTERM.
// Repeat -addr to serve several ports (each with its own FailFirst count).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

func main() {
	var addrs []string
	flag.Func("addr", "listen address (repeatable; default 127.0.0.1:8080)", func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		return nil
	})
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
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:8080"}
	}

	var servers []*echo.Server
	for _, addr := range addrs {
		s, err := echo.Start(addr, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "echo: %s/%s (%s) serving on %s\n", opts.Service, opts.Version, opts.Pod, s.Addr)
		servers = append(servers, s)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(shutdownCtx); err != nil {
			_ = s.Close()
		}
	}
}
