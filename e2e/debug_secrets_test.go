package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestDebugViewsCarryNoKeys: with a gateway credential in mizzen's inputs
// (applied with kubectl, so its data is also in the last-applied
// annotation) and a real gateway Envoy holding it and its own workload
// certificate over SDS, every page of mizzen's monitoring port under /debug/
// — the xDS views (syncz, connections, config_dump of each proxy, configz
// filtered and not, push_status, changes and each change), and every pprof
// profile its index lists, plus /metrics and /ready — is fetched and searched
// for the credential's private key (PEM, base64 of the PEM, DER, base64 and
// hex of the DER) and for any "PRIVATE KEY" block, also inside base64 runs.
func TestDebugViewsCarryNoKeys(t *testing.T) {
	const gwIP, secretName = "127.0.0.32", "debug-cred"
	rig.CheckLoopback(t, gwIP)
	certPEM, keyPEM := selfSignedCert(t, "debug.example.com")
	secret := map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata": map[string]any{"name": secretName, "namespace": "istio-system"},
		"data":     map[string]any{"tls.crt": base64.StdEncoding.EncodeToString(certPEM), "tls.key": base64.StdEncoding.EncodeToString(keyPEM)},
	}
	applied, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	secret["metadata"].(map[string]any)["annotations"] = map[string]any{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	secretJSON, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"secret.json": string(secretJSON),
		"gateway.yaml": `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: debug-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 18445, name: https, protocol: HTTPS}
    hosts: [debug.example.com]
    tls: {mode: SIMPLE, credentialName: ` + secretName + `}
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mz := rig.StartMizzen(t, "--config-dir", dir, "--insecure-dev-identity", "--ca-dir", t.TempDir())
	page := func(path string) []byte {
		t.Helper()
		body, status := get(t, context.Background(), mz.MonitoringURL+path)
		if status != http.StatusOK {
			t.Errorf("GET %s: %d", path, status)
		}
		return []byte(body)
	}
	gwID := rig.GatewayNodeID(gwIP)
	gw := rig.StartEnvoy(t, rig.EnvoyOptions{NodeID: gwID, Cluster: "istio-ingressgateway.istio-system", Metadata: rig.GatewayMetadata(gwIP), XDSAddr: mz.XDSAddr})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The gateway holds the credential (and its own certificate): the keys
	// are in mizzen's memory and on the stream, so a view could leak them.
	if err := rig.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		dump, err := gw.ConfigDumpRaw(ctx, false)
		if err != nil {
			return err
		}
		for _, s := range []string{`"kubernetes://` + secretName + `"`, `"default"`} {
			if !strings.Contains(string(dump), s) {
				return fmt.Errorf("gateway Envoy has no dynamic secret %s yet", s)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, gw.Log())
	}

	pages := []string{
		"/debug/syncz", "/debug/connections", "/debug/push_status", "/debug/changes",
		"/debug/configz", "/debug/configz?kind=Secret", "/debug/configz?kind=Secret&namespace=istio-system&name=" + secretName,
		"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1",
		"/metrics", "/ready",
	}
	var conns []string
	if err := json.Unmarshal(page("/debug/connections"), &conns); err != nil || len(conns) == 0 {
		t.Fatalf("/debug/connections: %v %v", conns, err)
	}
	for _, id := range conns {
		pages = append(pages, "/debug/config_dump?proxyID="+url.QueryEscape(id))
	}
	var changes []struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(page("/debug/changes"), &changes); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		pages = append(pages, fmt.Sprintf("/debug/changes?id=%d", c.ID))
	}
	for _, m := range regexp.MustCompile(`href='([a-z_]+)\?debug=1'`).FindAllStringSubmatch(string(page("/debug/pprof/")), -1) {
		switch m[1] {
		case "profile", "trace", "cmdline", "symbol": // fetched above (CPU and trace for 1 s, not 30)
		default:
			pages = append(pages, "/debug/pprof/"+m[1]+"?debug=1", "/debug/pprof/"+m[1])
		}
	}
	sort.Strings(pages)

	block, _ := pem.Decode(keyPEM)
	needles := map[string]string{
		"the key's PEM":           string(keyPEM),
		"the key's PEM in base64": base64.StdEncoding.EncodeToString(keyPEM),
		"the key's DER":           string(block.Bytes),
		"the key's DER in base64": base64.StdEncoding.EncodeToString(block.Bytes),
		"the key's DER in hex":    hex.EncodeToString(block.Bytes),
		"a PEM private key":       "PRIVATE KEY",
		"kubectl's copy":          "last-applied-configuration",
	}
	base64Run := regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)
	sawCredential := false
	for _, p := range pages {
		body := page(p)
		for what, n := range needles {
			if strings.Contains(string(body), n) {
				t.Errorf("%s shows %s", p, what)
			}
		}
		for _, run := range base64Run.FindAll(body, -1) {
			if dec, err := base64.StdEncoding.DecodeString(string(run)); err == nil && strings.Contains(string(dec), "PRIVATE KEY") {
				t.Errorf("%s holds a private key in base64: %.40s…", p, run)
			}
		}
		// config_dump shows the credential's (public) certificate: the key
		// would have been right next to it.
		sawCredential = sawCredential || (strings.HasPrefix(p, "/debug/config_dump") &&
			strings.Contains(string(body), base64.StdEncoding.EncodeToString(certPEM)))
	}
	if !sawCredential {
		t.Error("no config_dump showed the credential's certificate: the walk did not see the secret served")
	}
	var cz struct {
		Objects map[string]map[string]json.RawMessage `json:"objects"`
	}
	if err := json.Unmarshal(page("/debug/configz?kind=Secret"), &cz); err != nil {
		t.Fatal(err)
	}
	raw := cz.Objects["Secret"]["istio-system/"+secretName]
	var shown struct {
		Type string
		Keys []string
		Data any
	}
	if err := json.Unmarshal(raw, &shown); err != nil || shown.Type != "kubernetes.io/tls" || strings.Join(shown.Keys, ",") != "tls.crt,tls.key" || shown.Data != nil {
		t.Errorf("configz shows the Secret as %s (%v), want its type and key names only", raw, err)
	}
	t.Logf("%d pages searched", len(pages))
}
