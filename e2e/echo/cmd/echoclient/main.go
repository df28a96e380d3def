// Command echoclient sends a bounded run of requests (see echo.RunLoad: http://,
// https:// with -sni, tcp:// and grpc:// URLs) and prints one JSON line per
// response on stdout. The mesh rig runs it inside a pod's
// network namespace, as the pod's app, so its traffic is captured by the sidecar.
//
//	echoclient -url http://10.96.12.34/ -n 1000 -c 4 -H 'username: nolen'
//
// With -stop-on-eof it also stops (no new requests; in-flight ones finish) when
// its stdin closes, so a caller can end an open-ended run.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

func main() {
	var opts echo.LoadOptions
	opts.Headers = http.Header{}
	flag.StringVar(&opts.Method, "method", "GET", "HTTP method")
	flag.StringVar(&opts.URL, "url", "", "URL to request (required): http://, h2c:// (HTTP/2 prior knowledge), https://, tcp://host:port or grpc://host:port")
	flag.StringVar(&opts.SNI, "sni", "", "TLS server name of https:// requests (default: the URL's host)")
	flag.Func("H", "header `name: value` (repeatable; Host sets the request host)", func(s string) error {
		k, v, ok := strings.Cut(s, ":")
		if !ok {
			return fmt.Errorf("header %q: want name: value", s)
		}
		opts.Headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		return nil
	})
	flag.IntVar(&opts.N, "n", 1, fmt.Sprintf("number of requests (≤ %d)", echo.MaxRequests))
	flag.IntVar(&opts.Concurrency, "c", 1, "concurrent workers (keep-alive connection each)")
	flag.DurationVar(&opts.Duration, "duration", echo.DefaultDuration, fmt.Sprintf("bound on the whole run (≤ %s)", echo.MaxDuration))
	flag.DurationVar(&opts.Timeout, "timeout", echo.DefaultTimeout, "bound on each request")
	flag.BoolVar(&opts.IncludeHeaders, "include-headers", false, "put response headers in each record")
	flag.BoolVar(&opts.IncludeBody, "include-body", false, "put the response body in each record")
	stopOnEOF := flag.Bool("stop-on-eof", false, "stop when stdin reaches EOF")
	flag.Parse()
	if opts.URL == "" {
		fmt.Fprintln(os.Stderr, "echoclient: -url is required")
		os.Exit(2)
	}
	if *stopOnEOF {
		stop := make(chan struct{})
		opts.Stop = stop
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(stop)
		}()
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	enc := json.NewEncoder(out)
	err := echo.RunLoad(ctx, opts, func(r echo.Record) { _ = enc.Encode(&r) })
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echoclient:", err)
		os.Exit(1)
	}
}
