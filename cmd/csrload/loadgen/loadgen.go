// Package loadgen is csrload's engine: many callers of Istio's CSR API
// (istio.v1.auth.IstioCertificateService/CreateCertificate) presenting
// garbage tokens, each on its own TLS connection, while one legitimate
// caller with a real service-account token asks for certificates at a steady
// pace and times every answer. It speaks only the CSR API, so it drives
// mizzen and istiod alike.
package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/mizzenmesh/mizzen/cmd/xdsload/loadclient"
)

// Garbage kinds: what the attacking callers present as their token.
const (
	// GarbageJWT is a new JWT-shaped token per call (unexpired, audience
	// istio-ca, forged signature): nothing short of a TokenReview can tell
	// it is false, and no cache has seen it.
	GarbageJWT = "jwt"
	// GarbageRandom is random base64, not even a JWT.
	GarbageRandom = "random"
	// GarbageSame is one forged JWT repeated by every caller.
	GarbageSame = "same"
)

// Config is one load run.
type Config struct {
	Target     string         // the secure port, host:port
	RootCAs    *x509.CertPool // verifies the server's certificate; nil: not verified
	ServerName string         // TLS server name (default istiod.istio-system.svc)

	Callers        int           // garbage callers, one TLS connection each
	Duration       time.Duration // how long the garbage callers call
	Garbage        string        // GarbageJWT (default), GarbageRandom or GarbageSame
	GarbageSources []string      // local addresses the garbage connections use, in turn (empty: the system's choice)
	CallTimeout    time.Duration // per garbage call (default 5 s)

	LegitToken    string        // the legitimate caller's service-account token ("": no legitimate caller)
	LegitSource   string        // its local address
	LegitInterval time.Duration // between its CSRs (default 100 ms)
	LegitTimeout  time.Duration // its deadline per CSR (default 10 s)

	Pid int // a process (the server) whose RSS is sampled; 0: none

	Logger *slog.Logger
}

// Report is what a run measured.
type Report struct {
	Target   string  `json:"target"`
	Callers  int     `json:"callers"`
	Garbage  string  `json:"garbage"`
	Duration float64 `json:"duration_seconds"`

	// GarbageCalls counts the garbage calls by the status they ended with
	// (gRPC code names; "OK" would be a certificate for a garbage token).
	GarbageCalls     map[string]int `json:"garbage_calls"`
	GarbageCallsRate float64        `json:"garbage_calls_per_second"`
	Connected        int            `json:"garbage_callers_connected"`

	LegitCalls    int      `json:"legit_calls"`
	LegitFailures int      `json:"legit_failures"`
	LegitErrors   []string `json:"legit_errors,omitempty"` // the first few
	LegitP50Ms    float64  `json:"legit_p50_ms"`
	LegitP99Ms    float64  `json:"legit_p99_ms"`
	LegitMaxMs    float64  `json:"legit_max_ms"`

	// RSS of Pid in bytes: before the callers started, peak and at the end.
	RSSIdle  uint64 `json:"rss_bytes_idle,omitempty"`
	RSSPeak  uint64 `json:"rss_bytes_peak,omitempty"`
	RSSFinal uint64 `json:"rss_bytes_final,omitempty"`
}

func (c *Config) defaults() error {
	if c.Target == "" {
		return errors.New("no target")
	}
	if c.Callers < 0 || c.Duration <= 0 {
		return errors.New("callers must be ≥ 0 and duration > 0")
	}
	if c.ServerName == "" {
		c.ServerName = "istiod.istio-system.svc"
	}
	switch c.Garbage {
	case "":
		c.Garbage = GarbageJWT
	case GarbageJWT, GarbageRandom, GarbageSame:
	default:
		return fmt.Errorf("garbage %q: want %s, %s or %s", c.Garbage, GarbageJWT, GarbageRandom, GarbageSame)
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 5 * time.Second
	}
	if c.LegitInterval <= 0 {
		c.LegitInterval = 100 * time.Millisecond
	}
	if c.LegitTimeout <= 0 {
		c.LegitTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run runs the load for c.Duration (or until ctx ends) and reports.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	csr, err := newCSR()
	if err != nil {
		return nil, err
	}
	rep := &Report{Target: c.Target, Callers: c.Callers, Garbage: c.Garbage, GarbageCalls: map[string]int{}}
	var sampler *loadclient.ProcSampler
	if c.Pid > 0 {
		if sampler, err = loadclient.StartProcSampler(ctx, c.Pid, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("pid %d: %w", c.Pid, err)
		}
		rep.RSSIdle = sampler.Current().RSSFinal
	}
	// The legitimate caller is an established client: connected, with one
	// certificate issued, before the flood starts.
	var legitConn *grpc.ClientConn
	if c.LegitToken != "" {
		if legitConn, err = c.dial(c.LegitSource); err != nil {
			return nil, err
		}
		defer legitConn.Close()
		if _, err := c.legitCSR(ctx, pb.NewIstioCertificateServiceClient(legitConn), csr); err != nil {
			return nil, fmt.Errorf("the legitimate caller's first CSR, before any load: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	start := time.Now()

	var wg sync.WaitGroup
	var mu sync.Mutex
	same := forgedJWT()
	for i := range c.Callers {
		src := ""
		if len(c.GarbageSources) > 0 {
			src = c.GarbageSources[i%len(c.GarbageSources)]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes, connected := c.garbageCaller(ctx, src, csr, same)
			mu.Lock()
			defer mu.Unlock()
			for k, n := range outcomes {
				rep.GarbageCalls[k] += n
			}
			if connected {
				rep.Connected++
			}
		}()
	}
	var legit []time.Duration
	if c.LegitToken != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, fails, errs := c.legitCaller(ctx, pb.NewIstioCertificateServiceClient(legitConn), csr)
			mu.Lock()
			defer mu.Unlock()
			legit, rep.LegitFailures, rep.LegitErrors = lat, fails, errs
		}()
	}
	wg.Wait()
	rep.Duration = time.Since(start).Seconds()
	total := 0
	for _, n := range rep.GarbageCalls {
		total += n
	}
	rep.GarbageCallsRate = float64(total) / rep.Duration
	rep.LegitCalls = len(legit) + rep.LegitFailures
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	rep.LegitP50Ms = ms(loadclient.Percentile(legit, 50))
	rep.LegitP99Ms = ms(loadclient.Percentile(legit, 99))
	rep.LegitMaxMs = ms(loadclient.Percentile(legit, 100))
	if sampler != nil {
		st := sampler.Stop()
		rep.RSSPeak, rep.RSSFinal = st.RSSPeak, st.RSSFinal
	}
	return rep, nil
}

// dial opens a TLS connection to the target from src (if set). gRPC
// connects lazily; the caller's first call opens it.
func (c *Config) dial(src string) (*grpc.ClientConn, error) {
	tc := &tls.Config{RootCAs: c.RootCAs, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.RootCAs == nil {
		tc.InsecureSkipVerify = true // the load, not the server's identity, is under test
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if src != "" {
		ip := net.ParseIP(src)
		if ip == nil {
			return nil, fmt.Errorf("source address %q is not an IP", src)
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	return grpc.NewClient("passthrough:///"+c.Target, opts...)
}

// garbageCaller calls back to back with garbage tokens until ctx ends, as an
// attacker would, and counts the outcomes by status code.
func (c *Config) garbageCaller(ctx context.Context, src, csr, same string) (map[string]int, bool) {
	out := map[string]int{}
	conn, err := c.dial(src)
	if err != nil {
		out["dial_error"]++
		return out, false
	}
	defer conn.Close()
	client := pb.NewIstioCertificateServiceClient(conn)
	connected := false
	for ctx.Err() == nil {
		tok := same
		switch c.Garbage {
		case GarbageJWT:
			tok = forgedJWT()
		case GarbageRandom:
			tok = randomToken()
		}
		cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
		// WaitForReady: while the connection is not up, a call waits for it
		// instead of failing at once, so the loop never spins.
		_, err := client.CreateCertificate(metadata.AppendToOutgoingContext(cctx, "authorization", "Bearer "+tok),
			&pb.IstioCertificateRequest{Csr: csr, ValidityDuration: 3600}, grpc.WaitForReady(true))
		cancel()
		if ctx.Err() != nil {
			break // cut off by the end of the run: not an outcome
		}
		code := status.Code(err)
		out[code.String()]++
		if code != codes.Unavailable && code != codes.DeadlineExceeded {
			connected = true // the server answered
		}
	}
	return out, connected
}

// legitCaller asks for a certificate every LegitInterval with the real token
// and times each answer.
func (c *Config) legitCaller(ctx context.Context, client pb.IstioCertificateServiceClient, csr string) (lat []time.Duration, failures int, errs []string) {
	t := time.NewTicker(c.LegitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return lat, failures, errs
		case <-t.C:
		}
		// Its own deadline, not the run's: a CSR under way when the run
		// ends is still waited for and counted.
		d, err := c.legitCSR(context.WithoutCancel(ctx), client, csr)
		if err != nil {
			failures++
			if len(errs) < 5 {
				errs = append(errs, fmt.Sprintf("after %s: %v", d.Round(time.Millisecond), err))
			}
			c.Logger.Warn("legitimate CSR failed", "after", d, "err", err)
			continue
		}
		lat = append(lat, d)
	}
}

// legitCSR is one CSR of the legitimate caller, within LegitTimeout.
func (c *Config) legitCSR(ctx context.Context, client pb.IstioCertificateServiceClient, csr string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.LegitTimeout)
	defer cancel()
	start := time.Now()
	resp, err := client.CreateCertificate(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.LegitToken),
		&pb.IstioCertificateRequest{Csr: csr, ValidityDuration: 3600})
	d := time.Since(start)
	if err == nil && len(resp.GetCertChain()) == 0 {
		err = errors.New("empty certificate chain")
	}
	return d, err
}

// newCSR is a CSR for a fresh P-256 key, asking for no identity (the server
// signs the token's).
func newCSR() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{"csrload"}}}, key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// forgedJWT looks like a service-account token for audience istio-ca that
// expires in an hour, with a random ID and a random signature.
func forgedJWT() string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	id := make([]byte, 12)
	sig := make([]byte, 64)
	_, _ = rand.Read(id)
	_, _ = rand.Read(sig)
	now := time.Now()
	return enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:default:attacker",
		"aud": []string{"istio-ca"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(id),
	}) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func randomToken() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Codes lists a report's garbage outcomes, most frequent first.
func (r *Report) Codes() []string {
	keys := make([]string, 0, len(r.GarbageCalls))
	for k := range r.GarbageCalls {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if r.GarbageCalls[keys[i]] != r.GarbageCalls[keys[j]] {
			return r.GarbageCalls[keys[i]] > r.GarbageCalls[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
