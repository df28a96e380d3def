package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files of cmd/mizzen's table tests")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/mizzen -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./cmd/mizzen -update rewrites it; review the diff):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// sidecarConfig is what mizzen translates for the reviews-v1 sidecar of
// examples/bookinfo plus testdata/proxyconfig, as a proxyConfig.
func sidecarConfig(t *testing.T) *proxyConfig {
	t.Helper()
	var in model.Inputs
	for _, dir := range []string{"../../examples/bookinfo", "testdata/proxyconfig"} {
		got, errs, err := loadPath(dir, nil)
		if err != nil || len(errs) > 0 {
			t.Fatalf("loading %s: %v %v", dir, err, errs)
		}
		appendInputs(&in, got)
	}
	snap := model.Build(&in, 1)
	p, err := model.ParseProxy("sidecar~127.0.1.4~reviews-v1-0.default~default.svc.cluster.local",
		map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "reviews", "version": "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	out := translate.ForProxy(snap, p)
	pc := &proxyConfig{source: "test", versions: map[string]string{}}
	for _, m := range out.Clusters {
		pc.add(m, "1", "ACTIVE", time.Time{})
	}
	for _, m := range out.Listeners {
		pc.add(m, "1", "ACTIVE", time.Time{})
	}
	for _, m := range out.Routes {
		pc.add(m, "1", "ACTIVE", time.Time{})
	}
	for _, m := range out.Endpoints {
		pc.add(m, "1", "ACTIVE", time.Time{})
	}
	pc.sort()
	return pc
}

// The tables of a sidecar (virtualOutbound/virtualInbound, HTTP and TCP
// listeners, inbound clusters, a header match) read as istioctl's do.
func TestProxyConfigTables(t *testing.T) {
	pc := sidecarConfig(t)
	var out bytes.Buffer
	for _, print := range []func() error{
		func() error { return printClusters(&out, "table", pc, clusterFilter{}) },
		func() error { return printListeners(&out, "table", pc, listenerFilter{}) },
		func() error { return printRoutes(&out, "table", pc, routeFilter{}) },
		func() error { return printEndpoints(&out, "table", pc, endpointFilter{}) },
	} {
		if err := print(); err != nil {
			t.Fatal(err)
		}
		out.WriteString("\n")
	}
	golden(t, "proxyconfig_sidecar.txt", out.String())

	out.Reset()
	if err := printClusters(&out, "table", pc, clusterFilter{fqdn: "reviews", subset: "v2", direction: "outbound", port: 9080}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "reviews.default.svc.cluster.local 9080 v2 outbound EDS reviews.default" {
		t.Errorf("clusters --fqdn reviews --subset v2 --port 9080 --direction outbound:\n%s", out.String())
	}
	out.Reset()
	if err := printRoutes(&out, "table", pc, routeFilter{name: "9080"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "/* (end-user=jason)") || !strings.Contains(out.String(), "reviews.default") || strings.Contains(out.String(), "3306") {
		t.Errorf("routes --name 9080:\n%s", out.String())
	}
	out.Reset()
	if err := printEndpoints(&out, "table", pc, endpointFilter{cluster: "outbound|3306||mysql.default.svc.cluster.local"}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "127.0.1.9:3306") {
		t.Errorf("endpoints --cluster outbound|3306||mysql...:\n%s", out.String())
	}
}

// -o json prints the raw protos, which read back as the same resources.
func TestProxyConfigJSON(t *testing.T) {
	pc := sidecarConfig(t)
	var out bytes.Buffer
	if err := printClusters(&out, "json", pc, clusterFilter{fqdn: "ratings"}); err != nil {
		t.Fatal(err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list) != 2 {
		t.Fatalf("clusters -o json: %d items, %v\n%s", len(list), err, out.String())
	}
	for i, raw := range list {
		got := pc.clusters[0].msg.ProtoReflect().New().Interface()
		if err := unmarshalJSON(raw, got); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range pc.clusters {
			found = found || proto.Equal(e.msg, got)
		}
		if !found {
			t.Errorf("cluster %d of -o json is none of the proxy's: %s", i, raw)
		}
	}
	out.Reset()
	if err := printListeners(&out, "yaml", pc, listenerFilter{port: 15006}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "- address:") || !strings.Contains(out.String(), "name: virtualInbound") {
		t.Errorf("listeners --port 15006 -o yaml:\n%.400s", out.String())
	}
}

// An Envoy extension this binary does not know must not make the dump unreadable.
func TestUnmarshalKeepsUnknownExtensions(t *testing.T) {
	raw := []byte(`{"name": "x", "filter_chains": [{"filters": [{"name": "istio.stats",
		"typed_config": {"@type": "type.googleapis.com/stats.PluginConfig", "disable_host_header_fallback": true}}]}],
		"a_field_from_a_newer_envoy": 1}`)
	l := &listenerv3.Listener{}
	if err := unmarshalJSON(raw, l); err != nil {
		t.Fatalf("unknown extension: %v", err)
	}
	var st structpb.Struct
	tc := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	if err := tc.UnmarshalTo(&st); err != nil || st.GetFields()["@type_unknown_to_mizzen"].GetStringValue() != "type.googleapis.com/stats.PluginConfig" ||
		!st.GetFields()["disable_host_header_fallback"].GetBoolValue() {
		t.Errorf("unknown extension kept as %v (%v)", tc, err)
	}
}

// Secrets: one row per SDS secret with the certificate's validity and serial.
func TestSecretTable(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabc123), Subject: pkix.Name{CommonName: "test"},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	pc := &proxyConfig{}
	pc.add(&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(certPEM), PrivateKey: inline([]byte("[redacted]"))}}}, "1", "ACTIVE", time.Time{})
	pc.add(&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(certPEM)}}}, "1", "WARMING", time.Time{})
	var out bytes.Buffer
	if err := printSecrets(&out, "table", pc, notBefore.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	golden(t, "proxyconfig_secret.txt", out.String())
	out.Reset()
	if err := printSecrets(&out, "table", pc, notBefore.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), " false ") != 2 {
		t.Errorf("expired certificates not shown as invalid:\n%s", out.String())
	}
}

// proxy-status --admin: equal configs match; a changed route is shown as a
// unified diff naming both sides.
func TestCompareProxyConfig(t *testing.T) {
	want, got := sidecarConfig(t), sidecarConfig(t)
	want.source, got.source = "mizzen", "envoy"
	diffs, err := compareProxyConfig(want, got)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		if !d.Match {
			t.Errorf("%s differ between equal configs:\n%s", d.Type, d.Diff)
		}
	}
	renamed := false
	for _, vh := range got.routes[0].msg.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if hs := r.GetMatch().GetHeaders(); len(hs) > 0 && !renamed {
				hs[0].Name, renamed = "x-user", true
			}
		}
	}
	if !renamed {
		t.Fatal("no route with a header match in the fixture")
	}
	got.endpoints = got.endpoints[1:]
	diffs, err = compareProxyConfig(want, got)
	if err != nil {
		t.Fatal(err)
	}
	match := map[string]bool{}
	for _, d := range diffs {
		match[d.Type] = d.Match
		if d.Type == "Routes" && !(strings.Contains(d.Diff, "--- mizzen") && strings.Contains(d.Diff, `-                "name": "end-user"`) &&
			strings.Contains(d.Diff, `+                "name": "x-user"`)) {
			t.Errorf("routes diff:\n%s", d.Diff)
		}
	}
	if !match["Clusters"] || !match["Listeners"] || match["Routes"] || match["Endpoints"] {
		t.Errorf("match per type = %v, want routes and endpoints to differ", match)
	}
}
