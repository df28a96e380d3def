package rig

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP pilot_xds Number of endpoints connected to this pilot using XDS.
# TYPE pilot_xds gauge
pilot_xds{version="1.0"} 1
pilot_xds{version="2.0"} 2
# TYPE pilot_xds_pushes counter
pilot_xds_pushes{type="cds"} 3
pilot_xds_pushes{type="rds"} 4
# TYPE pilot_services gauge
pilot_services 4
# TYPE pilot_proxy_convergence_time histogram
pilot_proxy_convergence_time_bucket{le="0.1"} 2
pilot_proxy_convergence_time_bucket{le="+Inf"} 3
pilot_proxy_convergence_time_sum 0.25
pilot_proxy_convergence_time_count 3
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"pilot_xds":                          3,
		"pilot_xds_pushes":                   7,
		"pilot_services":                     4,
		"pilot_proxy_convergence_time_count": 3,
		"pilot_proxy_convergence_time_sum":   0.25,
		"pilot_total_xds_rejects":            0,
	} {
		if got := m.Sum(name); got != want {
			t.Errorf("Sum(%s) = %v, want %v", name, got, want)
		}
	}
	if got := m[`pilot_xds_pushes{type="rds"}`]; got != 4 {
		t.Errorf(`series pilot_xds_pushes{type="rds"} = %v, want 4`, got)
	}
	if got := m[`pilot_proxy_convergence_time_bucket{le="0.1"}`]; got != 2 {
		t.Errorf(`bucket le=0.1 = %v, want 2`, got)
	}
	if m.Has("pilot_total_xds_rejects") || !m.Has("pilot_services") {
		t.Errorf("Has is wrong")
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"--config-dir", "/a", "--xds-addr=127.0.0.1:1", "-monitoring-addr", "127.0.0.1:2", "--other"}
	for name, want := range map[string]string{
		"config-dir": "/a", "xds-addr": "127.0.0.1:1", "monitoring-addr": "127.0.0.1:2", "missing": "",
	} {
		if got := flagValue(args, name); got != want {
			t.Errorf("flagValue(%s) = %q, want %q", name, got, want)
		}
	}
}
