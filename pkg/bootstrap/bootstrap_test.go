package bootstrap

import (
	"encoding/json"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/grpc_credential/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestSidecarIsAValidBootstrap decodes the output strictly into Envoy's
// Bootstrap proto and runs its validation rules, as Envoy does at start.
func TestSidecarIsAValidBootstrap(t *testing.T) {
	out, err := Sidecar(Options{
		NodeID:   "sidecar~10.0.0.1~p.ns~ns.svc.cluster.local",
		Cluster:  "app.ns",
		Metadata: map[string]any{"NAMESPACE": "ns", "LABELS": map[string]any{"app": "a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(out, &b); err != nil {
		t.Fatalf("not a Bootstrap: %v\n%s", err, out)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("Envoy would refuse it: %v", err)
	}
	g := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetGoogleGrpc()
	if g.GetTargetUri() != DefaultDiscoveryAddress {
		t.Errorf("target %q", g.GetTargetUri())
	}
	if got := g.GetChannelCredentials().GetSslCredentials().GetRootCerts().GetFilename(); got != RootCertPath {
		t.Errorf("root certs %q", got)
	}
	if got := g.GetChannelArgs().GetArgs()["grpc.ssl_target_name_override"].GetStringValue(); got != "istiod.istio-system.svc" {
		t.Errorf("server name %q", got)
	}
	var ports []uint32
	for _, l := range b.GetStaticResources().GetListeners() {
		ports = append(ports, l.GetAddress().GetSocketAddress().GetPortValue())
	}
	if len(ports) != 1 || ports[0] != ReadinessPort {
		t.Errorf("static listener ports %v, want [%d]", ports, ReadinessPort)
	}
	// mizzen pushes prometheus_stats (listener and cluster) itself; static ones
	// of that name would make Envoy refuse them.
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "prometheus_stats" {
			t.Errorf("static cluster prometheus_stats collides with mizzen's")
		}
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 15000 {
		t.Errorf("admin on %v", a)
	}
}

func TestSidecarOptions(t *testing.T) {
	out, err := Sidecar(Options{NodeID: "n", DiscoveryAddress: "198.18.0.1:4000", ReadinessPort: -1, Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if _, ok := m["static_resources"]; ok {
		t.Errorf("static resources without listeners: %s", s)
	}
	for _, want := range []string{`"target_uri":"198.18.0.1:4000"`, `"string_value":"198.18.0.1"`, `"DELTA_GRPC"`, `"DELTA_GRPC"`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in %s", want, s)
		}
	}
	for _, bad := range []Options{{}, {NodeID: "n", DiscoveryAddress: "nohost"}, {NodeID: "n", AdminAddress: "x"}} {
		if _, err := Sidecar(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
