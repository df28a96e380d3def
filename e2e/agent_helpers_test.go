package e2e

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// Helpers of the pilot-agent tests (agent_test.go, agent_gateway_test.go).

// agentBootstrapClusters and agentBootstrapListeners are what istio-agent's
// bootstrap (Istio's envoy_bootstrap.json) defines itself: nothing mizzen
// pushes may carry these names or bind these ports.
var (
	agentBootstrapClusters = []string{"xds-grpc", "sds-grpc", "prometheus_stats", "agent"}
	agentBootstrapPorts    = []int{15090, 15021}
	// agentReservedPorts are the pod's own ports besides those listeners:
	// Envoy's admin (15000) and the agent's status server (15020).
	agentReservedPorts = []int{15000, 15020, 15090, 15021}
)

// proxyStatusTable runs `mizzen proxy-status` (the CLI) and returns its output
// and its rows by NAME (pod.namespace), each a map from column (NAME, TYPE,
// CDS, LDS, EDS, RDS, SDS, XDS, …: the single-word columns before LAST
// CHANGE) to its cell.
func proxyStatusTable(ctx context.Context, t *testing.T, mz *rig.Mizzen) (string, map[string]map[string]string, error) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, rig.MizzenBinary(t), "proxy-status", "--monitoring-addr", mz.MonitoringAddr).CombinedOutput()
	if err != nil {
		return string(out), nil, fmt.Errorf("mizzen proxy-status: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var cols []string
	for _, h := range strings.Fields(lines[0]) {
		if h == "LAST" {
			break
		}
		cols = append(cols, h)
	}
	rows := map[string]map[string]string{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < len(cols) {
			continue
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = f[i]
		}
		rows[row["NAME"]] = row
	}
	return string(out), rows, nil
}

// waitProxyStatusSynced waits until `mizzen proxy-status` lists every named
// proxy (pod.namespace) with CDS, LDS, EDS and RDS SYNCED and the row passing
// check (e.g. its SDS and XDS columns). It returns the last table.
func waitProxyStatusSynced(ctx context.Context, t *testing.T, mz *rig.Mizzen, names []string, check func(name string, row map[string]string) error) (string, error) {
	t.Helper()
	var table string
	err := rig.Eventually(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		out, rows, err := proxyStatusTable(ctx, t, mz)
		table = out
		if err != nil {
			return err
		}
		for _, n := range names {
			row, ok := rows[n]
			if !ok {
				return fmt.Errorf("%s not listed", n)
			}
			for _, typ := range []string{"CDS", "LDS", "EDS", "RDS"} {
				if row[typ] != "SYNCED" {
					return fmt.Errorf("%s: %s %s", n, typ, row[typ])
				}
			}
			if check != nil {
				if err := check(n, row); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return table, err
}

// agentRowCheck is the proxy-status row an agent's proxy must have: SDS "-"
// (mizzen serves it no secrets: the agent does), or SYNCED when it also gets
// credentials (a gateway's credentialName) from mizzen; XDS its protocol.
func agentRowCheck(a *rig.Agent, sds string) func(map[string]string) error {
	return func(row map[string]string) error {
		xds := "sotw"
		if a.Delta {
			xds = "delta"
		}
		if row["SDS"] != sds || row["XDS"] != xds {
			return fmt.Errorf("%s: SDS %s XDS %s, want SDS %s XDS %s", a.Name, row["SDS"], row["XDS"], sds, xds)
		}
		return nil
	}
}

// envoyRejects returns Envoy's nonzero *.update_rejected counters (CDS, LDS,
// RDS, SDS, EDS): a config Envoy refused.
func envoyRejects(ctx context.Context, e *rig.Envoy) (map[string]int64, error) {
	stats, err := e.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range stats {
		if strings.HasSuffix(k, ".update_rejected") && v != 0 {
			out[k] = v
		}
	}
	return out, nil
}

// envoySecret is one dynamic secret Envoy holds: its certificate (the leaf
// of a tls_certificate, the first CA of a validation context).
type envoySecret struct {
	Name    string
	Version string
	Cert    *x509.Certificate
}

// envoySecrets reads the dynamic active secrets from Envoy's config dump.
func envoySecrets(ctx context.Context, e *rig.Envoy) (map[string]envoySecret, error) {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]envoySecret{}
	items, _ := d["SecretsConfigDump"]["dynamic_active_secrets"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		name, _ := m["name"].(string)
		version, _ := m["version_info"].(string)
		sec, _ := m["secret"].(map[string]any)
		var pemData []byte
		if tc, ok := sec["tls_certificate"].(map[string]any); ok {
			pemData = agentDataSource(tc["certificate_chain"])
		} else if vc, ok := sec["validation_context"].(map[string]any); ok {
			pemData = agentDataSource(vc["trusted_ca"])
		}
		s := envoySecret{Name: name, Version: version}
		if b, _ := pem.Decode(pemData); b != nil {
			s.Cert, _ = x509.ParseCertificate(b.Bytes)
		}
		out[name] = s
	}
	return out, nil
}

// agentDataSource decodes an Envoy DataSource as config_dump shows it.
func agentDataSource(v any) []byte {
	m, _ := v.(map[string]any)
	if s, ok := m["inline_bytes"].(string); ok {
		b, _ := base64.StdEncoding.DecodeString(s)
		return b
	}
	if s, ok := m["inline_string"].(string); ok {
		return []byte(s)
	}
	return nil
}

// sdsSources walks Envoy's dynamic clusters and listeners and returns, per
// secret name, where Envoy fetches it from: "ads" (the xDS stream, i.e.
// mizzen) or the name of the gRPC cluster of an api_config_source (the
// agent's "sds-grpc").
func sdsSources(ctx context.Context, e *rig.Envoy) (map[string][]string, error) {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if cfg, ok := x["sds_config"].(map[string]any); ok {
				name, _ := x["name"].(string)
				src := "?"
				if _, ok := cfg["ads"]; ok {
					src = "ads"
				} else if acs, ok := cfg["api_config_source"].(map[string]any); ok {
					gs, _ := acs["grpc_services"].([]any)
					if len(gs) > 0 {
						g, _ := gs[0].(map[string]any)
						eg, _ := g["envoy_grpc"].(map[string]any)
						if c, ok := eg["cluster_name"].(string); ok {
							src = c
						}
					}
				}
				if seen[name] == nil {
					seen[name] = map[string]bool{}
				}
				seen[name][src] = true
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(d["ClustersConfigDump"]["dynamic_active_clusters"])
	walk(d["ListenersConfigDump"]["dynamic_listeners"])
	out := map[string][]string{}
	for name, srcs := range seen {
		for s := range srcs {
			out[name] = append(out[name], s)
		}
		sort.Strings(out[name])
	}
	return out, nil
}

// bootstrapCollisions checks that the proxy's static (bootstrap) clusters
// include istio-agent's own, that no dynamic cluster mizzen pushed carries
// one of their names, and that no dynamic listener binds one of the pod's
// reserved ports. It returns what collides.
func bootstrapCollisions(ctx context.Context, e *rig.Envoy, wantStatic bool) ([]string, error) {
	d, err := e.ConfigDump(ctx)
	if err != nil {
		return nil, err
	}
	var bad []string
	static := map[string]bool{}
	items, _ := d["ClustersConfigDump"]["static_clusters"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		c, _ := m["cluster"].(map[string]any)
		if n, _ := c["name"].(string); n != "" {
			static[n] = true
		}
	}
	dynamic := d.DynamicActiveClusters()
	for n := range d.DynamicWarmingClusters() {
		dynamic[n] = nil
	}
	for _, n := range agentBootstrapClusters {
		if wantStatic && !static[n] {
			bad = append(bad, fmt.Sprintf("bootstrap cluster %s missing (static: %v)", n, sortedNames(static)))
		}
		if _, ok := dynamic[n]; ok {
			bad = append(bad, fmt.Sprintf("dynamic cluster %s pushed over the bootstrap's", n))
		}
	}
	reserved := map[int]bool{}
	for _, p := range agentReservedPorts {
		reserved[p] = true
	}
	for name, l := range d.ActiveListeners() {
		addr, _ := l["address"].(map[string]any)
		sa, _ := addr["socket_address"].(map[string]any)
		port, _ := sa["port_value"].(float64)
		if reserved[int(port)] {
			bad = append(bad, fmt.Sprintf("dynamic listener %s binds port %d", name, int(port)))
		}
	}
	if wantStatic {
		ports := map[int]bool{}
		sl, _ := d["ListenersConfigDump"]["static_listeners"].([]any)
		for _, it := range sl {
			m, _ := it.(map[string]any)
			l, _ := m["listener"].(map[string]any)
			addr, _ := l["address"].(map[string]any)
			sa, _ := addr["socket_address"].(map[string]any)
			port, _ := sa["port_value"].(float64)
			ports[int(port)] = true
		}
		for _, p := range agentBootstrapPorts {
			if !ports[p] {
				bad = append(bad, fmt.Sprintf("bootstrap listener on %d missing", p))
			}
		}
	}
	return bad, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// agentPodName is the NAME column of proxy-status for a workload: pod.namespace.
func agentPodName(w *rig.Workload) string { return w.Name + "." + w.Namespace }

// checkAgentStreams checks how each agent talks to mizzen: the agent says it
// connected over delta (or SotW) xDS, and mizzen's /debug/syncz shows the
// stream's protocol the same and the identity its token proved.
func checkAgentStreams(ctx context.Context, t *testing.T, mz *rig.Mizzen, agents ...*rig.Agent) {
	t.Helper()
	body, err := mz.Get(ctx, "/debug/syncz")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Proxy    string `json:"proxy"`
		Protocol string `json:"protocol"`
		Identity string `json:"identity"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatalf("/debug/syncz: %v", err)
	}
	for _, a := range agents {
		wantProto, wantLog := "sotw", "connected to upstream XDS server"
		if a.Delta {
			wantProto, wantLog = "delta", "connected to delta upstream XDS server"
		}
		if !strings.Contains(a.Log(), wantLog) {
			t.Errorf("%s: the agent's log has no %q", a.Name, wantLog)
		}
		found := false
		for _, r := range rows {
			if r.Proxy != a.ProxyID {
				continue
			}
			found = true
			wantID := "spiffe://cluster.local/ns/" + a.Namespace + "/sa/" + a.ServiceAccount
			if r.Protocol != wantProto || r.Identity != wantID {
				t.Errorf("%s: mizzen sees a %q stream proving %q, want %q proving %q", a.Name, r.Protocol, r.Identity, wantProto, wantID)
			}
		}
		if !found {
			t.Errorf("%s: not in mizzen's /debug/syncz", a.Name)
		}
	}
}
