// Package echo is the e2e test app: an HTTP server that answers every request with
// who it is (service, version, pod) and what it saw (method, path, host, headers),
// so a test can tell which backend Envoy routed a request to.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Options says who the server pretends to be and how it misbehaves.
type Options struct {
	Service string
	Version string
	Pod     string
	// FailFirst makes the server answer 503 to the first N requests (for retry tests).
	FailFirst int
	// FailAfter makes the server answer 503 to every request after the first
	// N (a backend that goes bad: outlier detection, failover).
	FailAfter int
	// Delay is added before every answer (cut short if the client goes away).
	Delay time.Duration
}

// Response is the JSON body of every answer.
type Response struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Pod     string `json:"pod"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Host    string `json:"host"`
	// Headers holds the request headers; repeated headers are joined with ",".
	Headers map[string]string `json:"headers"`
	// Status is the HTTP status the server answered with.
	Status int `json:"status"`
	// Request is this request's number on this server (port), counting from 1:
	// with FailFirst N, the first answer that is not a 503 has Request N+1.
	Request int64 `json:"request"`
	// RemoteAddr is the peer of the connection the request came on (ip:port): behind
	// an Istio-style sidecar it is 127.0.0.6 (the inbound cluster's bind address).
	RemoteAddr string `json:"remote_addr"`
	// SNI is the server name the client sent (TLS servers only, see StartTLS).
	SNI string `json:"sni,omitempty"`
}

// Header returns a request header the server saw, case-insensitively.
func (r *Response) Header(name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Response headers set on every answer.
const (
	HeaderVersion = "x-echo-version"
	HeaderService = "x-echo-service"
	HeaderPod     = "x-echo-pod"
	// HeaderProto is the protocol the request reached the app in ("HTTP/2.0").
	HeaderProto = "x-echo-proto"
)

// Server is a running echo server.
type Server struct {
	Addr string // the address it listens on, host:port
	URL  string // http://Addr

	opts     Options
	ln       net.Listener
	srv      *http.Server
	requests atomic.Int64
	done     chan struct{}
}

// Start listens on addr (e.g. "127.0.1.1:9080"; port 0 picks a free one) and serves
// until Close.
func Start(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return serve(ln, "http://", opts), nil
}

func serve(ln net.Listener, scheme string, opts Options) *Server {
	s := &Server{
		Addr: ln.Addr().String(),
		URL:  scheme + ln.Addr().String(),
		opts: opts,
		ln:   ln,
		done: make(chan struct{}),
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	if scheme == "http://" {
		// HTTP/2 with prior knowledge (h2c) too, as apps behind sidecars serve
		// it: a sniffed port forwards in the protocol the caller spoke.
		s.srv.Protocols = new(http.Protocols)
		s.srv.Protocols.SetHTTP1(true)
		s.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s
}

// Requests is the number of requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Close stops the server at once, closing open connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Shutdown stops the server gracefully, waiting for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// ServeHTTP answers every request with a Response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if s.opts.Delay > 0 {
		t := time.NewTimer(s.opts.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status := http.StatusOK
	if n <= int64(s.opts.FailFirst) || (s.opts.FailAfter > 0 && n > int64(s.opts.FailAfter)) {
		status = http.StatusServiceUnavailable
	}
	resp := Response{
		Service:    s.opts.Service,
		Version:    s.opts.Version,
		Pod:        s.opts.Pod,
		Method:     r.Method,
		Path:       r.URL.RequestURI(),
		Host:       r.Host,
		Headers:    flatten(r.Header),
		Status:     status,
		Request:    n,
		RemoteAddr: r.RemoteAddr,
	}
	if r.TLS != nil {
		resp.SNI = r.TLS.ServerName
	}
	body, _ := json.Marshal(&resp)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderVersion, s.opts.Version)
	h.Set(HeaderService, s.opts.Service)
	h.Set(HeaderPod, s.opts.Pod)
	h.Set(HeaderProto, r.Proto)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func flatten(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[strings.ToLower(k)] = strings.Join(h[k], ",")
	}
	return out
}
