// Command mizzen-kube-apiserver is a test-only kube-apiserver: it starts an
// embedded etcd on loopback and then runs the real kube-apiserver in-process,
// built from the k8s.io/kubernetes module (see README.md).
//
//	mizzen-kube-apiserver --etcd-data-dir DIR --etcd-client-url http://127.0.0.1:P \
//	    --etcd-peer-url http://127.0.0.1:Q -- <kube-apiserver flags>
//
// Everything after "--" goes to kube-apiserver unchanged; --etcd-servers is added
// (pointing at the embedded etcd) unless given. SIGTERM/SIGINT stop kube-apiserver
// gracefully, then etcd.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // for timeZone support in CronJob, as in cmd/kube-apiserver

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as in cmd/kube-apiserver
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in cmd/kube-apiserver
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as in cmd/kube-apiserver
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("mizzen-kube-apiserver", flag.ContinueOnError)
	dataDir := fs.String("etcd-data-dir", "", "etcd data directory (required; reused across restarts)")
	clientURL := fs.String("etcd-client-url", "http://127.0.0.1:2379", "embedded etcd client URL (loopback only)")
	peerURL := fs.String("etcd-peer-url", "http://127.0.0.1:2380", "embedded etcd peer URL (loopback only; must stay the same across restarts)")
	etcdLogLevel := fs.String("etcd-log-level", "warn", "embedded etcd log level")
	fsync := fs.Bool("etcd-fsync", false, "fsync etcd writes (off: a killed process loses nothing, only a crashed machine would)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [etcd flags] -- [kube-apiserver flags]\n", fs.Name())
		fs.PrintDefaults()
	}
	// Our own flags come first; the rest (after "--", or from the first flag we
	// don't know) belongs to kube-apiserver.
	ours, theirs := splitArgs(args)
	if err := fs.Parse(ours); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "mizzen-kube-apiserver: --etcd-data-dir is required")
		return 2
	}

	cu, err := loopbackURL(*clientURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mizzen-kube-apiserver: --etcd-client-url: %v\n", err)
		return 2
	}
	pu, err := loopbackURL(*peerURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mizzen-kube-apiserver: --etcd-peer-url: %v\n", err)
		return 2
	}

	cfg := embed.NewConfig()
	cfg.Name = "mizzen-e2e"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = *etcdLogLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = !*fsync

	start := time.Now()
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mizzen-kube-apiserver: starting embedded etcd: %v\n", err)
		return 1
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		fmt.Fprintf(os.Stderr, "mizzen-kube-apiserver: embedded etcd failed: %v\n", err)
		etcd.Close()
		return 1
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "mizzen-kube-apiserver: embedded etcd not ready after 60s")
		etcd.Close()
		return 1
	}
	fmt.Fprintf(os.Stderr, "mizzen-kube-apiserver: embedded etcd ready on %s (data %s) in %v\n", cu, *dataDir, time.Since(start).Round(time.Millisecond))

	// kube-apiserver is useless without its storage: if etcd dies, so do we.
	go func() {
		select {
		case err := <-etcd.Err():
			fmt.Fprintf(os.Stderr, "mizzen-kube-apiserver: embedded etcd failed: %v\n", err)
			os.Exit(1)
		case <-etcd.Server.StopNotify():
		}
	}()

	if !hasFlag(theirs, "etcd-servers") {
		theirs = append([]string{"--etcd-servers=" + cu.String()}, theirs...)
	}
	// NewAPIServerCommand installs the SIGTERM/SIGINT handler (a second signal exits).
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(theirs)
	code := cli.Run(cmd)

	etcd.Close()
	return code
}

// splitArgs separates our --etcd-* flags from kube-apiserver's. With a "--" the
// split is there; without one, our flags are the leading ones we know.
func splitArgs(args []string) (ours, theirs []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:]
		}
	}
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		name, _, hasValue := strings.Cut(name, "=")
		switch name {
		case "etcd-data-dir", "etcd-client-url", "etcd-peer-url", "etcd-log-level":
			ours = append(ours, args[i])
			if !hasValue && i+1 < len(args) {
				i++
				ours = append(ours, args[i])
			}
		case "etcd-fsync":
			ours = append(ours, args[i])
		default:
			return ours, args[i:]
		}
	}
	return ours, nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func loopbackURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%q: only http:// on loopback is supported", s)
	}
	host := u.Hostname()
	if host != "localhost" && !strings.HasPrefix(host, "127.") {
		return nil, fmt.Errorf("%q is not a loopback address", s)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("%q has no port", s)
	}
	return u, nil
}
