package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a load run: every run stops at MaxRequests requests or MaxDuration,
// whichever comes first, whatever the caller asks for.
const (
	MaxRequests     = 1_000_000
	MaxDuration     = 10 * time.Minute
	DefaultDuration = time.Minute
	DefaultTimeout  = 5 * time.Second
)

// LoadOptions describes a bounded run of HTTP requests (see RunLoad).
type LoadOptions struct {
	Method string // default GET
	URL    string
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
	// Headers and Body are set when asked for (LoadOptions.IncludeHeaders/IncludeBody).
	Headers http.Header `json:"headers,omitempty"`
	Body    string      `json:"body,omitempty"`
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
	if _, err := http.NewRequest(opts.Method, opts.URL, nil); err != nil {
		return err
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
	tr := &http.Transport{
		Proxy:               nil, // never an environment proxy
		DialContext:         (&net.Dialer{Timeout: opts.Timeout}).DialContext,
		MaxIdleConns:        opts.Concurrency,
		MaxIdleConnsPerHost: opts.Concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   opts.Timeout,
		// Redirects are answers to look at, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := int(next.Add(1)) - 1
				if seq >= opts.N || ctx.Err() != nil {
					return
				}
				rec := doOne(ctx, client, opts, seq, start)
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

func doOne(ctx context.Context, client *http.Client, opts LoadOptions, seq int, start time.Time) Record {
	begin := time.Now()
	rec := Record{Seq: seq, StartMs: ms(begin.Sub(start))}
	req, err := http.NewRequestWithContext(ctx, opts.Method, opts.URL, nil)
	if err != nil {
		rec.Error = err.Error()
		return rec
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
		rec.LatencyMs = ms(time.Since(begin))
		rec.Error = err.Error()
		return rec
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	rec.LatencyMs = ms(time.Since(begin))
	rec.Status = resp.StatusCode
	rec.Version = resp.Header.Get(HeaderVersion)
	rec.Pod = resp.Header.Get(HeaderPod)
	if err != nil && !errors.Is(err, io.EOF) {
		rec.Error = "reading body: " + err.Error()
	}
	if opts.IncludeHeaders {
		rec.Headers = resp.Header
	}
	if opts.IncludeBody {
		rec.Body = string(body)
	}
	return rec
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
