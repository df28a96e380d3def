package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mizzenmesh/mizzen/xds"
)

func TestPrintProxyStatusTable(t *testing.T) {
	rows := []xds.ProxySyncStatus{{
		ProxyID: "sidecar~10.1.0.4~reviews-v1-0.default~default.svc.cluster.local", Type: "sidecar", Protocol: "delta",
		Types: map[string]xds.TypeStatus{"cds": {State: "SYNCED"}, "lds": {State: "SYNCED"}, "eds": {State: "STALE"},
			"rds": {State: "NACKED", NackMessage: "bad route 9080", NackedResources: []string{"9080"}}},
	}}
	var out bytes.Buffer
	if err := printProxyStatus(&out, "table", filterProxies(rows, "reviews-v1-0")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME", "XDS", "delta", "reviews-v1-0.default", "SYNCED", "STALE", "NACKED", "rds [9080]: bad route 9080"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if len(filterProxies(rows, "nope")) != 0 {
		t.Error("filter matched an unknown proxy")
	}
}
