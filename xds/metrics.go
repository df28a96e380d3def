package xds

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics carries istiod's metric names and labels, so Istio's control-plane
// dashboards work on mizzen unchanged.
type Metrics struct {
	connected      *prometheus.GaugeVec
	pushes         *prometheus.CounterVec
	rejects        *prometheus.CounterVec
	services       prometheus.Gauge
	convergence    prometheus.Histogram
	pushTime       *prometheus.HistogramVec
	triggers       *prometheus.CounterVec
	internalErrors prometheus.Counter
	configErrors   *prometheus.CounterVec

	reg prometheus.Registerer

	identityRefusals *prometheus.CounterVec
	certRotations    prometheus.Counter

	// typeRejects are istiod's pilot_xds_<type>_reject{node, err}: 1 while a
	// proxy's last response of the type is NACKed, gone once it ACKs.
	typeRejects [numTypes]*prometheus.GaugeVec
}

// maxRejectErrLen bounds the err label (Envoy's message) of pilot_xds_<type>_reject.
const maxRejectErrLen = 256

func (m *Metrics) rejected(t typeIndex, node, msg string) {
	if m == nil {
		return
	}
	if len(msg) > maxRejectErrLen {
		msg = msg[:maxRejectErrLen]
	}
	m.typeRejects[t].DeletePartialMatch(prometheus.Labels{"node": node})
	m.typeRejects[t].WithLabelValues(node, msg).Set(1)
}

func (m *Metrics) accepted(t typeIndex, node string) {
	if m == nil {
		return
	}
	m.typeRejects[t].DeletePartialMatch(prometheus.Labels{"node": node})
}

// NewMetrics registers the xDS metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pilot_xds",
			Help: "Number of endpoints connected to this pilot using XDS."}, []string{"version"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_xds_pushes",
			Help: "Pilot build and send errors for lds, rds, cds and eds."}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_total_xds_rejects",
			Help: "Total number of XDS responses from pilot rejected by proxy."}, []string{"type"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pilot_services",
			Help: "Total services known to pilot."}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pilot_proxy_convergence_time",
			Help:    "Delay in seconds between config change and a proxy receiving all required configuration.",
			Buckets: []float64{.001, .005, .01, .02, .05, .1, .5, 1, 3, 5, 10, 20, 30}}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pilot_xds_push_time",
			Help:    "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 3, 5, 10, 20, 30}}, []string{"type"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_push_triggers",
			Help: "Total number of times a push was triggered, labeled by reason for the push."}, []string{"type"}),
		internalErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "pilot_total_xds_internal_errors",
			Help: "Total number of internal XDS errors in pilot."}),
		configErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mizzen_config_errors_total",
			Help: "Config objects or files skipped (or applied with warnings) because of errors, by kind and code."}, []string{"kind", "code"}),
		identityRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mizzen_xds_identity_refusals_total",
			Help: "xDS streams refused because the node's claims disagree with the identity its credential proved, by reason."}, []string{"reason"}),
		certRotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "mizzen_workload_cert_rotations_total",
			Help: "Workload certificates replaced on an open xDS stream before expiry (or after a root change)."}),
	}
	for i, t := range typeLabels {
		m.pushes.WithLabelValues(t)
		m.rejects.WithLabelValues(t)
		m.typeRejects[i] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pilot_xds_" + t + "_reject",
			Help: "Pilot rejected " + strings.ToUpper(t) + " configs: 1 per proxy whose last response of the type was NACKed, with Envoy's message."}, []string{"node", "err"})
		reg.MustRegister(m.typeRejects[i])
	}
	reg.MustRegister(m.connected, m.pushes, m.rejects, m.services, m.convergence, m.pushTime, m.triggers, m.internalErrors, m.configErrors, m.identityRefusals, m.certRotations)
	return m
}

// ConfigError counts one config problem; sources call it for files that fail
// to parse, the server for objects the model skipped.
func (m *Metrics) ConfigError(kind, code string) { m.configErrors.WithLabelValues(kind, code).Inc() }
