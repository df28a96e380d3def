package authn

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what authenticating tokens costs: TokenReviews sent to the
// apiserver, answers served from the cache, calls turned away before a
// review. A nil *Metrics counts nothing.
type Metrics struct {
	reviews   *prometheus.CounterVec
	cacheHits *prometheus.CounterVec
	throttled *prometheus.CounterVec
}

// NewMetrics registers the metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mizzen_token_reviews_total",
			Help: "TokenReviews sent to the apiserver, by result (authenticated, refused, error)."}, []string{"result"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mizzen_token_review_cache_hits_total",
			Help: "Token authentications answered from mizzen's cache of recent TokenReview answers, by result (authenticated, refused)."}, []string{"result"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mizzen_authn_throttled_total",
			Help: "Unauthenticated calls and connections turned away or held back, by reason (rate_limited: a call from an address over its budget; overloaded: too many reviews waiting; conn_closed: the connection of a call over budget closed; conn_delayed: a new connection from an address over budget made to wait; conn_dropped: closed at once, too many waiting)."}, []string{"reason"}),
	}
	reg.MustRegister(m.reviews, m.cacheHits, m.throttled)
	return m
}

func (m *Metrics) review(result string) {
	if m != nil {
		m.reviews.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) cacheHit(result string) {
	if m != nil {
		m.cacheHits.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) throttle(reason string) {
	if m != nil {
		m.throttled.WithLabelValues(reason).Inc()
	}
}
