package rig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

// Traffic from a pod: the rig runs the echo client (e2e/echo/cmd/echoclient)
// with `ip netns exec` inside the workload's network namespace, as root — so, as
// any app's, its connections are captured by the sidecar (only uid/gid 1337 are
// let through). It sends a bounded number of keep-alive requests and prints one
// JSON line per answer, which the rig parses into LoadResult records.

// LoadSpec describes a run of requests from a pod. Every run is bounded by N and
// by Duration.
type LoadSpec struct {
	Method string // default GET
	// URL is http://<ip>[:port]/path, h2c://… (HTTP/2 with prior knowledge), https://… (with SNI), tcp://<ip>:<port>
	// (TCP echo) or grpc://<ip>:<port> (gRPC health check): see echo.LoadOptions.
	// The host must be an IP of ServiceCIDR, ServiceEntryVIPCIDR, the rig network
	// or loopback.
	URL     string
	SNI     string // the TLS server name of https:// requests (default: the URL's host)
	Headers map[string]string
	// N is the number of requests (required).
	N int
	// Concurrency is the number of workers, each on its own keep-alive connection (default 1).
	Concurrency int
	// Duration bounds the run (default 60 s).
	Duration time.Duration
	// Timeout bounds each request (default 5 s).
	Timeout time.Duration
	// IncludeHeaders and IncludeBody keep response headers/bodies in the records.
	IncludeHeaders bool
	IncludeBody    bool
}

// LoadResult is the outcome of a run.
type LoadResult struct {
	Records []echo.Record
	Elapsed time.Duration
}

// StatusCounts counts answers by status; 0 counts requests without an answer.
func (r *LoadResult) StatusCounts() map[int]int {
	out := map[int]int{}
	for _, rec := range r.Records {
		out[rec.Status]++
	}
	return out
}

// Non2xx is the number of records that are not a 2xx answer (errors included).
func (r *LoadResult) Non2xx() int {
	n := 0
	for _, rec := range r.Records {
		if rec.Status < 200 || rec.Status > 299 {
			n++
		}
	}
	return n
}

// VersionCounts counts 2xx answers by x-echo-version.
func (r *LoadResult) VersionCounts() map[string]int {
	out := map[string]int{}
	for _, rec := range r.Records {
		if rec.Status >= 200 && rec.Status <= 299 {
			out[rec.Version]++
		}
	}
	return out
}

// Share is the fraction of all records answered 2xx by version.
func (r *LoadResult) Share(version string) float64 {
	if len(r.Records) == 0 {
		return 0
	}
	return float64(r.VersionCounts()[version]) / float64(len(r.Records))
}

// Errors returns up to n distinct transport errors, for messages.
func (r *LoadResult) Errors(n int) []string {
	seen := map[string]bool{}
	var out []string
	for _, rec := range r.Records {
		if rec.Error != "" && !seen[rec.Error] && len(out) < n {
			seen[rec.Error] = true
			out = append(out, rec.Error)
		}
	}
	return out
}

// Latency returns the q-quantile (0..1) of the latencies of all records.
func (r *LoadResult) Latency(q float64) time.Duration {
	if len(r.Records) == 0 {
		return 0
	}
	ls := make([]float64, len(r.Records))
	for i, rec := range r.Records {
		ls[i] = rec.LatencyMs
	}
	sort.Float64s(ls)
	i := int(q * float64(len(ls)-1))
	return time.Duration(ls[i] * float64(time.Millisecond))
}

// Summary is a one-line description for logs.
func (r *LoadResult) Summary() string {
	st := map[string]int{}
	for k, v := range r.StatusCounts() {
		st[strconv.Itoa(k)] = v
	}
	return fmt.Sprintf("%d requests in %s: status [%s] versions [%s] p50 %s p99 %s",
		len(r.Records), r.Elapsed.Round(time.Millisecond), FormatCounts(st), FormatCounts(r.VersionCounts()),
		r.Latency(0.5).Round(10*time.Microsecond), r.Latency(0.99).Round(10*time.Microsecond))
}

// checkTarget refuses URLs whose host is not an IP literal inside the rig's
// reach: the Service CIDR and the ServiceEntry VIP range (captured by the
// sidecar), the rig network, loopback.
// Names are refused: nothing in a pod may resolve them through the host's DNS.
func checkTarget(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https", "h2c", "tcp", "grpc":
	default:
		return fmt.Errorf("URL %q: only http://, https://, h2c://, tcp:// and grpc:// are supported", raw)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("URL %q: the host must be an IPv4 literal (a ClusterIP or pod IP); set the Host header for names", raw)
	}
	for _, c := range []string{ServiceCIDR, ServiceEntryVIPCIDR, NetworkCIDR, "127.0.0.0/8"} {
		if _, cidr, _ := net.ParseCIDR(c); cidr.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("URL %q: %s is outside %s, %s, %s and loopback", raw, ip, ServiceCIDR, ServiceEntryVIPCIDR, NetworkCIDR)
}

func (spec LoadSpec) args() []string {
	args := []string{"-url", spec.URL, "-n", strconv.Itoa(spec.N)}
	if spec.Method != "" {
		args = append(args, "-method", spec.Method)
	}
	if spec.SNI != "" {
		args = append(args, "-sni", spec.SNI)
	}
	if spec.Concurrency > 0 {
		args = append(args, "-c", strconv.Itoa(spec.Concurrency))
	}
	if spec.Duration > 0 {
		args = append(args, "-duration", spec.Duration.String())
	}
	if spec.Timeout > 0 {
		args = append(args, "-timeout", spec.Timeout.String())
	}
	keys := make([]string, 0, len(spec.Headers))
	for k := range spec.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-H", k+": "+spec.Headers[k])
	}
	if spec.IncludeHeaders {
		args = append(args, "-include-headers")
	}
	if spec.IncludeBody {
		args = append(args, "-include-body")
	}
	return args
}

// LoadRun is a run in progress (StartLoad).
type LoadRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	stderr bytes.Buffer
	start  time.Time
	done   chan struct{}
	err    error
}

// StartLoad starts a run in the pod and returns at once; Stop ends it early
// (requests in flight finish), Wait collects the records. ctx bounds the run too:
// when it ends the client is killed and Wait reports the error.
func (w *Workload) StartLoad(ctx context.Context, spec LoadSpec) (*LoadRun, error) {
	if spec.N <= 0 {
		return nil, fmt.Errorf("LoadSpec.N must be > 0")
	}
	if err := checkTarget(spec.URL); err != nil {
		return nil, err
	}
	bin := w.mesh.clientBinary
	if bin == "" {
		return nil, fmt.Errorf("echo client binary not built (rig bug)")
	}
	args := append([]string{"netns", "exec", w.Pod.NetNS, bin}, spec.args()...)
	args = append(args, "-stop-on-eof")
	r := &LoadRun{done: make(chan struct{})}
	r.cmd = exec.CommandContext(ctx, "ip", args...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r.cmd.Stdout = &r.stdout
	r.cmd.Stderr = &r.stderr
	r.cmd.WaitDelay = 5 * time.Second
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the echo client in pod %s: %v", w.Name, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

// Stop asks the run to end: no new requests start, in-flight ones finish.
func (r *LoadRun) Stop() { _ = r.stdin.Close() }

// Wait waits for the run to end and parses its records.
func (r *LoadRun) Wait() (*LoadResult, error) {
	<-r.done
	res := &LoadResult{Elapsed: time.Since(r.start)}
	if r.err != nil {
		return res, fmt.Errorf("echo client: %v: %s", r.err, strings.TrimSpace(r.stderr.String()))
	}
	sc := bufio.NewScanner(&r.stdout)
	sc.Buffer(make([]byte, 64*1024), 8<<20)
	for sc.Scan() {
		var rec echo.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return res, fmt.Errorf("echo client output %q: %v", sc.Text(), err)
		}
		res.Records = append(res.Records, rec)
	}
	return res, sc.Err()
}

// Load runs spec from the pod and returns the records (see StartLoad).
func (w *Workload) Load(ctx context.Context, spec LoadSpec) (*LoadResult, error) {
	r, err := w.StartLoad(ctx, spec)
	if err != nil {
		return nil, err
	}
	return r.Wait()
}

// HTTP sends one request from inside the pod, as its app would, and returns the
// answer. A request that got no answer is an error.
func (w *Workload) HTTP(ctx context.Context, method, url string, headers map[string]string) (int, http.Header, []byte, error) {
	res, err := w.Load(ctx, LoadSpec{Method: method, URL: url, Headers: headers, N: 1, IncludeHeaders: true, IncludeBody: true,
		Duration: 30 * time.Second, Timeout: 10 * time.Second})
	if err != nil {
		return 0, nil, nil, err
	}
	if len(res.Records) != 1 {
		return 0, nil, nil, fmt.Errorf("%s %s from pod %s: no answer recorded", method, url, w.Name)
	}
	rec := res.Records[0]
	if rec.Error != "" {
		return rec.Status, rec.Headers, []byte(rec.Body), fmt.Errorf("%s %s from pod %s: %s", method, url, w.Name, rec.Error)
	}
	return rec.Status, rec.Headers, []byte(rec.Body), nil
}

// Echo sends one request from the pod and decodes the echo app's answer (what
// the server saw). The status is returned too; a non-echo body leaves the
// Response empty.
func (w *Workload) Echo(ctx context.Context, method, url string, headers map[string]string) (int, *echo.Response, error) {
	status, hdr, body, err := w.HTTP(ctx, method, url, headers)
	if err != nil {
		return status, nil, err
	}
	var r echo.Response
	if strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &r); err != nil {
			return status, nil, fmt.Errorf("decoding echo answer %q: %v", body, err)
		}
	}
	return status, &r, nil
}
