// Command echo runs the e2e echo app (see package echo) until SIGINT/SIGTERM.
// Repeat -addr to serve several HTTP ports (each with its own FailFirst count);
// -tls-addr serves HTTPS with a self-signed certificate for the -tls-name names,
// -tcp-addr a TCP echo that greets each connection with who it is, -grpc-addr the
// gRPC health service tagging its answers with who it is.
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
	list := func(dst *[]string) func(string) error {
		return func(s string) error {
			for _, a := range strings.Split(s, ",") {
				if a = strings.TrimSpace(a); a != "" {
					*dst = append(*dst, a)
				}
			}
			return nil
		}
	}
	var addrs, tlsAddrs, tlsNames, tcpAddrs, grpcAddrs, muxAddrs []string
	flag.Func("addr", "HTTP listen address (repeatable; default 127.0.0.1:8080 unless another kind is given)", list(&addrs))
	flag.Func("tls-addr", "HTTPS listen address (repeatable)", list(&tlsAddrs))
	flag.Func("tls-name", "a name of the HTTPS certificate (repeatable; default: the pod name)", list(&tlsNames))
	flag.Func("tcp-addr", "TCP echo listen address (repeatable)", list(&tcpAddrs))
	flag.Func("mux-addr", "HTTP (HTTP/1.1, h2c) and TCP echo on one port, told apart by the client's first bytes (repeatable)", list(&muxAddrs))
	flag.Func("grpc-addr", "gRPC (health service) listen address (repeatable)", list(&grpcAddrs))
	var opts echo.Options
	flag.StringVar(&opts.Service, "service", "echo", "service name to report")
	flag.StringVar(&opts.Version, "version", "v1", "version to report (also in the x-echo-version header)")
	flag.StringVar(&opts.Pod, "pod", "", "pod name to report (default: hostname)")
	flag.IntVar(&opts.FailFirst, "fail-first", 0, "answer 503 to the first N HTTP requests (per port)")
	flag.IntVar(&opts.FailAfter, "fail-after", 0, "answer 503 to every HTTP request after the first N (per port)")
	flag.DurationVar(&opts.Delay, "delay", 0, "delay before every answer (HTTP) or greeting (TCP)")
	flag.Parse()
	if opts.Pod == "" {
		opts.Pod, _ = os.Hostname()
	}
	if len(tlsNames) == 0 {
		tlsNames = []string{opts.Pod}
	}
	if len(addrs)+len(tlsAddrs)+len(tcpAddrs)+len(grpcAddrs)+len(muxAddrs) == 0 {
		addrs = []string{"127.0.0.1:8080"}
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	serving := func(kind, addr string) {
		fmt.Fprintf(os.Stderr, "echo: %s/%s (%s) serving %s on %s\n", opts.Service, opts.Version, opts.Pod, kind, addr)
	}

	var stops []func(ctx context.Context)
	for _, addr := range addrs {
		s, err := echo.Start(addr, opts)
		if err != nil {
			fail(err)
		}
		serving("HTTP", s.Addr)
		stops = append(stops, func(ctx context.Context) { shutdown(ctx, s) })
	}
	for _, addr := range tlsAddrs {
		s, err := echo.StartTLS(addr, opts, tlsNames)
		if err != nil {
			fail(err)
		}
		serving("HTTPS (certificate for "+strings.Join(tlsNames, ", ")+")", s.Addr)
		stops = append(stops, func(ctx context.Context) { shutdown(ctx, s) })
	}
	for _, addr := range tcpAddrs {
		s, err := echo.StartTCP(addr, opts)
		if err != nil {
			fail(err)
		}
		serving("TCP", s.Addr)
		stops = append(stops, func(context.Context) { _ = s.Close() })
	}
	for _, addr := range muxAddrs {
		s, err := echo.StartMux(addr, opts)
		if err != nil {
			fail(err)
		}
		serving("HTTP and TCP", s.Addr)
		stops = append(stops, func(context.Context) { _ = s.Close() })
	}
	for _, addr := range grpcAddrs {
		s, err := echo.StartGRPC(addr, opts)
		if err != nil {
			fail(err)
		}
		serving("gRPC", s.Addr)
		stops = append(stops, func(context.Context) { s.Close() })
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range stops {
		s(shutdownCtx)
	}
}

func shutdown(ctx context.Context, s *echo.Server) {
	if err := s.Shutdown(ctx); err != nil {
		_ = s.Close()
	}
}
