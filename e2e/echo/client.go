package echo

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Bounds of a load run: every run stops at MaxRequests requests or MaxDuration,
// whichever comes first, whatever the caller asks for.
const (
	MaxRequests     = 1_000_000
	MaxDuration     = 10 * time.Minute
	DefaultDuration = time.Minute
	DefaultTimeout  = 5 * time.Second
)

// LoadOptions describes a bounded run of requests (see RunLoad).
//
// The URL's scheme picks what a request is:
//   - http://, https://: an HTTP/1.1 request on the worker's keep-alive
//     connection. https skips certificate verification (the echo servers'
//     certificates are self-signed) and sends SNI as the server name (default:
//     the URL's host); the record names the certificate the server showed.
//   - tcp://host:port: a new TCP connection to a TCP echo server (StartTCP):
//     read its greeting line, send a line, read it back, close. A complete
//     exchange is recorded as status 200 with the greeting's version and pod.
//   - grpc://host:port: a unary grpc.health.v1.Health/Check call on the worker's
//     own plaintext HTTP/2 connection, Headers sent as metadata. An OK answer
//     is recorded as status 200 with the x-echo-version/x-echo-pod header
//     metadata; a failed call has status 0 and the gRPC status as its error.
type LoadOptions struct {
	Method string // default GET (HTTP only)
	URL    string
	// SNI is the TLS server name https:// requests send (default: the URL's host).
	SNI string
	// Headers are sent on every request; "Host" sets the request's Host.
	Headers http.Header
	// N is the number of requests (required, ≤ MaxRequests).
	N int
	// Concurrency is the number of workers, each with its keep-alive connection (default 1).
	Concurrency int
	// Duration bounds the whole run (default DefaultDuration, ≤ MaxDuration): no
	// request starts after it, and requests in flight are cut off at it.
	Duration time.Duration
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// IncludeHeaders and IncludeBody put the response headers / body in each Record.
	IncludeHeaders bool
	IncludeBody    bool
	// Stop, when closed, ends the run early: no new request starts.
	Stop <-chan struct{}

	h2c bool // the URL was h2c://: speak HTTP/2 with prior knowledge
}

// Record is the outcome of one request.
type Record struct {
	Seq       int     `json:"seq"`
	StartMs   float64 `json:"start_ms"` // since the run began
	LatencyMs float64 `json:"latency_ms"`
	Status    int     `json:"status"` // 0 when the request failed without an answer
	Version   string  `json:"version,omitempty"`
	Pod       string  `json:"pod,omitempty"`
	Error     string  `json:"error,omitempty"`
	// Headers and Body are set when asked for (LoadOptions.IncludeHeaders/IncludeBody);
	// for gRPC the header metadata, for TCP the greeting line.
	Headers http.Header `json:"headers,omitempty"`
	Body    string      `json:"body,omitempty"`
	// TLSPeer is the common name of the certificate an https:// server showed.
	TLSPeer string `json:"tls_peer,omitempty"`
	// Proto is the protocol of the answer as the client got it, BackendProto
	// the one the echo server got the request in (x-echo-proto).
	Proto        string `json:"proto,omitempty"`
	BackendProto string `json:"backend_proto,omitempty"`
}

// RunLoad sends opts.N requests with opts.Concurrency workers over keep-alive
// connections and calls emit (serialized) with each outcome. It stops early when
// ctx ends, opts.Stop closes or opts.Duration passes. Transport errors are
// Records (Status 0), not a returned error; RunLoad errs only on bad options.
func RunLoad(ctx context.Context, opts LoadOptions, emit func(Record)) error {
	if opts.Method == "" {
		opts.Method = http.MethodGet
	}
	if opts.N <= 0 || opts.N > MaxRequests {
		return fmt.Errorf("N = %d: want 1..%d", opts.N, MaxRequests)
	}
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.Duration > MaxDuration {
		return fmt.Errorf("duration %s: want ≤ %s", opts.Duration, MaxDuration)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Concurrency > opts.N {
		opts.Concurrency = opts.N
	}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return err
	}
	// Each worker gets its own request function (for gRPC its own connection).
	var newWorker func() (do requestFunc, done func())
	switch u.Scheme {
	case "http", "https", "h2c":
		if u.Scheme == "h2c" {
			// HTTP/2 with prior knowledge on a plaintext connection.
			u.Scheme = "http"
			opts.URL = u.String()
			opts.h2c = true
		}
		if _, err := http.NewRequest(opts.Method, opts.URL, nil); err != nil {
			return err
		}
		client, closeIdle := httpClient(opts)
		defer closeIdle()
		newWorker = func() (requestFunc, func()) {
			return func(ctx context.Context, rec *Record) { doHTTP(ctx, client, opts, rec) }, func() {}
		}
	case "tcp":
		if u.Port() == "" {
			return fmt.Errorf("URL %q: want tcp://host:port", opts.URL)
		}
		newWorker = func() (requestFunc, func()) {
			return func(ctx context.Context, rec *Record) { doTCP(ctx, u.Host, opts, rec) }, func() {}
		}
	case "grpc":
		if u.Port() == "" {
			return fmt.Errorf("URL %q: want grpc://host:port", opts.URL)
		}
		if _, err := grpc.NewClient("passthrough:///"+u.Host, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		newWorker = func() (requestFunc, func()) {
			conn, _ := grpc.NewClient("passthrough:///"+u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
			return func(ctx context.Context, rec *Record) { doGRPC(ctx, conn, opts, rec) }, func() { conn.Close() }
		}
	default:
		return fmt.Errorf("URL %q: the scheme must be http, https, tcp or grpc", opts.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	if opts.Stop != nil {
		go func() {
			select {
			case <-opts.Stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do, done := newWorker()
			defer done()
			for {
				seq := int(next.Add(1)) - 1
				if seq >= opts.N || ctx.Err() != nil {
					return
				}
				begin := time.Now()
				rec := Record{Seq: seq, StartMs: ms(begin.Sub(start))}
				do(ctx, &rec)
				rec.LatencyMs = ms(time.Since(begin))
				if rec.Status == 0 && ctx.Err() != nil {
					return // cut off by the end of the run, not a failure of the mesh
				}
				mu.Lock()
				emit(rec)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return nil
}

// requestFunc makes one request and fills in rec (all but Seq, StartMs, LatencyMs).
type requestFunc func(ctx context.Context, rec *Record)

func httpClient(opts LoadOptions) (*http.Client, func()) {
	tr := &http.Transport{
		Proxy:               nil, // never an environment proxy
		DialContext:         (&net.Dialer{Timeout: opts.Timeout}).DialContext,
		MaxIdleConns:        opts.Concurrency,
		MaxIdleConnsPerHost: opts.Concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		// The echo servers' certificates are self-signed: what matters is which
		// backend answered (the record names its certificate), not trust.
		TLSClientConfig: &tls.Config{ServerName: opts.SNI, InsecureSkipVerify: true}, //nolint:gosec // test client
	}
	if opts.h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{
		Transport: tr,
		Timeout:   opts.Timeout,
		// Redirects are answers to look at, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr.CloseIdleConnections
}

// doHTTP is one HTTP request on the client's keep-alive connections.
func doHTTP(ctx context.Context, client *http.Client, opts LoadOptions, rec *Record) {
	req, err := http.NewRequestWithContext(ctx, opts.Method, opts.URL, nil)
	if err != nil {
		rec.Error = err.Error()
		return
	}
	for k, vs := range opts.Headers {
		if strings.EqualFold(k, "Host") {
			if len(vs) > 0 {
				req.Host = vs[0]
			}
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		rec.Error = err.Error()
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	rec.Status = resp.StatusCode
	rec.Version = resp.Header.Get(HeaderVersion)
	rec.Pod = resp.Header.Get(HeaderPod)
	rec.Proto, rec.BackendProto = resp.Proto, resp.Header.Get(HeaderProto)
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		rec.TLSPeer = resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if err != nil && !errors.Is(err, io.EOF) {
		rec.Error = "reading body: " + err.Error()
	}
	if opts.IncludeHeaders {
		rec.Headers = resp.Header
	}
	if opts.IncludeBody {
		rec.Body = string(body)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// doTCP is one exchange with a TCP echo server on a new connection: read the
// greeting, send a line, read it back.
func doTCP(ctx context.Context, addr string, opts LoadOptions, rec *Record) {
	c, err := (&net.Dialer{Timeout: opts.Timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		rec.Error = err.Error()
		return
	}
	defer c.Close()
	deadline := time.Now().Add(opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		rec.Error = fmt.Sprintf("reading the greeting: %v (got %q)", err, line)
		return
	}
	var g TCPGreeting
	if err := json.Unmarshal([]byte(line), &g); err != nil {
		rec.Error = fmt.Sprintf("greeting %q: %v", line, err)
		return
	}
	rec.Version, rec.Pod = g.Version, g.Pod
	if opts.IncludeBody {
		rec.Body = strings.TrimSpace(line)
	}
	ping := fmt.Sprintf("ping %d\n", rec.Seq)
	if _, err := io.WriteString(c, ping); err != nil {
		rec.Error = "sending: " + err.Error()
		return
	}
	if back, err := r.ReadString('\n'); err != nil || back != ping {
		rec.Error = fmt.Sprintf("echo: got %q (%v), want %q", back, err, ping)
		return
	}
	rec.Status = http.StatusOK
}

// doGRPC is one grpc.health.v1.Health/Check call on the worker's connection.
func doGRPC(ctx context.Context, conn *grpc.ClientConn, opts LoadOptions, rec *Record) {
	md := metadata.MD{}
	for k, vs := range opts.Headers {
		if strings.EqualFold(k, "Host") {
			continue // the authority is the target's
		}
		md.Append(strings.ToLower(k), vs...)
	}
	cctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), opts.Timeout)
	defer cancel()
	var hdr metadata.MD
	resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	if v := hdr.Get(HeaderVersion); len(v) > 0 {
		rec.Version = v[0]
	}
	if v := hdr.Get(HeaderPod); len(v) > 0 {
		rec.Pod = v[0]
	}
	if opts.IncludeHeaders {
		rec.Headers = http.Header{}
		for k, vs := range hdr {
			for _, v := range vs {
				rec.Headers.Add(k, v)
			}
		}
	}
	if err != nil {
		st := status.Convert(err)
		rec.Error = "grpc status " + st.Code().String() + ": " + st.Message()
		return
	}
	rec.Status = http.StatusOK
	if opts.IncludeBody {
		rec.Body = resp.GetStatus().String()
	}
}
