package rig

import (
	"net"
	"strconv"
)

const (
	// AdminAddressKey is the node metadata key (a mizzen extension) naming the
	// Envoy admin address mizzen's stats listener forwards /stats/prometheus to;
	// the rig's sidecars set it to <pod ip>:15000.
	AdminAddressKey = "MIZZEN_ADMIN_ADDRESS"
	// StatsPort is the sidecar's Prometheus port (Istio's 15090), served by
	// mizzen's stats listener and excluded from inbound capture.
	StatsPort = 15090
)

// StatsAddr is <pod ip>:15090, where Prometheus scrapes the sidecar.
func (w *Workload) StatsAddr() string { return net.JoinHostPort(w.IP, strconv.Itoa(StatsPort)) }

// StatsURL is http://<pod ip>:15090/stats/prometheus.
func (w *Workload) StatsURL() string { return "http://" + w.StatsAddr() + "/stats/prometheus" }
