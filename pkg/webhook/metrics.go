package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics are istiod's webhook metrics, under istiod's names, so existing
// dashboards keep working.
type Metrics struct {
	injectRequests, injectSuccess, injectSkip prometheus.Counter
	injectFailure                             *prometheus.CounterVec
	validationPassedC                         prometheus.Counter
	validationFailedC                         *prometheus.CounterVec
}

// NewMetrics registers the webhook metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		injectRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_requests_total",
			Help: "Pod admission requests the injector received."}),
		injectSuccess: prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_success_total",
			Help: "Pods a sidecar was injected into."}),
		injectSkip: prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_skip_total",
			Help: "Pods left without a sidecar by policy (namespace, pod label or annotation, already injected)."}),
		injectFailure: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecar_injection_failure_total",
			Help: "Pods refused by the injector, by reason."}, []string{"type"}),
		validationPassedC: prometheus.NewCounter(prometheus.CounterOpts{Name: "galley_validation_passed",
			Help: "Istio objects the validation webhook accepted."}),
		validationFailedC: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "galley_validation_failed",
			Help: "Istio objects the validation webhook refused, by reason."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.injectRequests, m.injectSuccess, m.injectSkip, m.injectFailure, m.validationPassedC, m.validationFailedC)
	}
	return m
}

// The methods accept a nil *Metrics, so tests need none.

func (m *Metrics) injectRequest() {
	if m != nil {
		m.injectRequests.Inc()
	}
}

func (m *Metrics) injectSuccessInc() {
	if m != nil {
		m.injectSuccess.Inc()
	}
}

func (m *Metrics) injectSkipInc() {
	if m != nil {
		m.injectSkip.Inc()
	}
}

func (m *Metrics) injectFailureInc(typ string) {
	if m != nil {
		m.injectFailure.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) validationPassed() {
	if m != nil {
		m.validationPassedC.Inc()
	}
}

func (m *Metrics) validationFailed(reason string) {
	if m != nil {
		m.validationFailedC.WithLabelValues(reason).Inc()
	}
}
