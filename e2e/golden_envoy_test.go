package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestGoldenCasesAcceptedByEnvoy proves the translators never produce config a
// real Envoy rejects: every golden case of translate/testdata is served by
// mizzen to a real Envoy per TestProxy, which must ACK all four types.
func TestGoldenCasesAcceptedByEnvoy(t *testing.T) {
	cases, err := filepath.Glob("../translate/testdata/*.in.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	writeGoldenGatewayCertFiles(t)
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			type testProxy struct {
				Kind     string         `json:"kind"`
				ID       string         `json:"id"`
				Metadata map[string]any `json:"metadata"`
				Identity string         `json:"identity"`
			}
			var proxies []testProxy
			var objects []string
			for _, doc := range strings.Split(string(raw), "\n---") {
				var tp testProxy
				if yaml.Unmarshal([]byte(doc), &tp) == nil && tp.Kind == "TestProxy" {
					proxies = append(proxies, tp)
					continue
				}
				objects = append(objects, doc)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "case.yaml"), []byte(strings.Join(objects, "\n---")), 0o644); err != nil {
				t.Fatal(err)
			}
			mz := rig.StartMizzen(t, "--config-dir", dir)
			var withID []testProxy
			for _, tp := range proxies {
				checkProxyAcks(t, mz, tp.ID, tp.Metadata, "")
				if tp.Identity != "" {
					withID = append(withID, tp)
				}
			}
			// A proxy with an identity gets more (mTLS, gateway HTTPS chains
			// and their SDS secrets): served again by a mizzen that takes the
			// identity from node metadata, Envoy must ACK that too, SDS included.
			if len(withID) > 0 {
				mzID := rig.StartMizzen(t, "--config-dir", dir, "--insecure-dev-identity")
				for _, tp := range withID {
					sds := ""
					if _, agent := tp.Metadata["ISTIO_VERSION"]; agent {
						sds = startAgentSDSStub(t, tp.ID, tp.Identity)
					}
					checkProxyAcks(t, mzID, tp.ID, tp.Metadata, sds)
				}
			}
		})
	}
}

// checkProxyAcks runs an Envoy for node id and waits until mizzen reports it
// SYNCED; agentSDS is the istio-agent SDS stand-in for an agent node.
func checkProxyAcks(t *testing.T, mz *rig.Mizzen, id string, meta map[string]any, agentSDS string) {
	t.Helper()
	if meta == nil {
		meta = map[string]any{}
	}
	// istio-agent's proxies (ISTIO_VERSION) speak delta xDS, as pilot-agent
	// does by default (ISTIO_DELTA_XDS); the others state of the world.
	_, agent := meta["ISTIO_VERSION"]
	env := rig.StartEnvoy(t, rig.EnvoyOptions{NodeID: id, Metadata: meta, XDSAddr: mz.XDSAddr, Delta: agent, AgentSDSAddr: agentSDS})
	defer env.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var last string
	err := rig.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		body, err := mz.Get(ctx, "/debug/syncz")
		if err != nil {
			return err
		}
		var rows []struct {
			Proxy string `json:"proxy"`
			Types map[string]struct {
				State       string `json:"state"`
				NackMessage string `json:"nack_message"`
			} `json:"types"`
		}
		if err := json.Unmarshal(body, &rows); err != nil {
			return err
		}
		for _, r := range rows {
			if r.Proxy != id {
				continue
			}
			for typ, st := range r.Types {
				if st.State == "NACKED" {
					t.Fatalf("Envoy rejected %s for %s: %s", typ, id, st.NackMessage)
				}
				// Envoy asks for EDS/RDS only when a cluster or listener needs them.
				if st.State != "SYNCED" && !((typ == "eds" || typ == "rds") && st.State == "NOT SENT") {
					last = typ + " is " + st.State
					return errString(last)
				}
			}
			return nil
		}
		return errString("proxy not connected yet")
	})
	if err != nil {
		t.Fatalf("proxy %s never synced: %v (last: %s)", id, err, last)
	}
	stats, err := env.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range stats {
		if strings.HasSuffix(k, ".update_rejected") && v != 0 {
			t.Errorf("%s = %d for %s", k, v, id)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// goldenGatewayCertDir is where golden cases point Gateway servers'
// serverCertificate/privateKey/caCertificates: an Envoy mizzen bootstrapped
// reads them itself, and refuses a listener whose files it cannot read.
const goldenGatewayCertDir = "/tmp/mizzen-golden-gateway-certs"

// writeGoldenGatewayCertFiles puts a certificate, its key and a CA there,
// each file written whole (temp file + rename): Envoy never reads half a file.
func writeGoldenGatewayCertFiles(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(goldenGatewayCertDir, 0o755); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSignedCert(t, "files.example.com")
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": certPEM} {
		f, err := os.CreateTemp(goldenGatewayCertDir, name+".*")
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(goldenGatewayCertDir, name))
		}
		if err != nil {
			_ = os.Remove(f.Name())
			t.Fatal(err)
		}
	}
}
