package xds

import (
	"fmt"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// telemetryParts are a proxy's stats listener and telemetry clusters
// (translate/telemetry_stats.go). They depend on the mesh config and a few
// node metadata fields (translate.TelemetryKey), so proxies sharing those
// share one copy, and an endpoint-only change reuses them with the rest of
// configParts.
type telemetryParts struct {
	listeners, clusters *part
}

func (cp *configParts) telemetryFor(p *model.Proxy) (*telemetryParts, error) {
	key := translate.TelemetryKey(p)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if tp, ok := cp.telemetry[key]; ok {
		return tp, nil
	}
	l, err := newPart(translate.TelemetryListeners(p), listenerName)
	if err != nil {
		return nil, fmt.Errorf("telemetry listeners: %w", err)
	}
	c, err := newPart(translate.TelemetryClusters(cp.snap, p), clusterName)
	if err != nil {
		return nil, fmt.Errorf("telemetry clusters: %w", err)
	}
	if cp.telemetry == nil {
		cp.telemetry = map[string]*telemetryParts{}
	}
	tp := &telemetryParts{listeners: l, clusters: c}
	cp.telemetry[key] = tp
	return tp, nil
}
