package featuretests

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/xds"
)

// No debug view carries a private key or a Secret's data: with a gateway
// that holds a credential (and its own workload certificate), every
// /debug/* page of the xDS server is read and searched for the key, in PEM,
// in base64 and as DER, and for any "PRIVATE KEY" block hidden in a base64
// string. Secrets in /debug/configz show name, type and key names.
func TestDebugViewsCarryNoKeys(t *testing.T) {
	ca := testCA(t)
	h := newHarness(t, func(o *xds.Options) {
		o.CA = func() *certs.CA { return ca }
		o.InsecureDevIdentity = true
		o.TrustDomain = "cluster.local"
	})
	in := secureGatewayInputs(t)
	cred := in.Secrets[0]
	// kubectl apply leaves the whole object, data included, in an annotation.
	applied, _ := json.Marshal(cred)
	cred.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	keyPEM := cred.Data["tls.key"]
	h.start(in)
	gwNode := mizzenNode("router", "127.0.0.30", "gw-0", "istio-system", map[string]string{"istio": "ingressgateway"}, "127.0.0.1:15000")
	gw := h.connect(gwNode)
	gw.subscribe(resourcev3.ListenerType)
	gw.syncUntil("the HTTPS listener", func() bool { return gw.has(resourcev3.ListenerType, "0.0.0.0_443") })
	gw.subscribe(resourcev3.SecretType, "default", "ROOTCA", "kubernetes://secure-cred")
	gw.syncUntil("the credential", func() bool { return gw.has(resourcev3.SecretType, "kubernetes://secure-cred") })

	pages := []string{
		"/debug/syncz", "/debug/connections", "/debug/push_status", "/debug/changes",
		"/debug/config_dump?proxyID=" + url.QueryEscape(gwNode.GetId()),
		"/debug/configz", "/debug/configz?kind=Secret", "/debug/configz?kind=Secret&namespace=istio-system&name=secure-cred",
	}
	var changes []struct {
		ID uint64 `json:"id"`
	}
	_ = json.Unmarshal(debugGet(t, h, "127.0.0.1:40000", "/debug/changes").Body.Bytes(), &changes)
	for _, c := range changes {
		pages = append(pages, fmt.Sprintf("/debug/changes?id=%d", c.ID))
	}
	block, _ := pem.Decode(keyPEM)
	for _, p := range pages {
		rec := debugGet(t, h, "127.0.0.1:40000", p)
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
			continue
		}
		body := rec.Body.String()
		for what, secret := range map[string]string{
			"the key's PEM":             string(keyPEM),
			"the key's PEM in base64":   base64.StdEncoding.EncodeToString(keyPEM),
			"the key's DER in base64":   base64.StdEncoding.EncodeToString(block.Bytes),
			"the key's DER":             string(block.Bytes),
			"a PEM private key block":   "PRIVATE KEY",
			"the applied configuration": "last-applied-configuration",
		} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %s", p, what)
			}
		}
		if s := privateKeyInBase64(rec.Body.Bytes()); s != "" {
			t.Errorf("%s: a JSON string decodes to a private key: %.60s…", p, s)
		}
	}

	var cz struct {
		Objects map[string]map[string]json.RawMessage `json:"objects"`
	}
	rec := debugGet(t, h, "127.0.0.1:40000", "/debug/configz?kind=Secret&name=secure-cred")
	if err := json.Unmarshal(rec.Body.Bytes(), &cz); err != nil {
		t.Fatal(err)
	}
	var sec struct {
		Metadata struct{ Name, Namespace string }
		Type     string
		Keys     []string
		Data     map[string]any
	}
	if err := json.Unmarshal(cz.Objects["Secret"]["istio-system/secure-cred"], &sec); err != nil {
		t.Fatalf("configz Secret: %v\n%s", err, rec.Body)
	}
	if sec.Metadata.Name != "secure-cred" || sec.Type != "kubernetes.io/tls" || strings.Join(sec.Keys, ",") != "tls.crt,tls.key" || sec.Data != nil {
		t.Errorf("configz Secret = %+v, want name, type kubernetes.io/tls and keys tls.crt,tls.key only", sec)
	}
}

// privateKeyInBase64 returns a JSON string value of body that base64-decodes
// to something holding "PRIVATE KEY" (protojson writes bytes as base64).
func privateKeyInBase64(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var found string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case string:
			if b, err := base64.StdEncoding.DecodeString(x); err == nil && strings.Contains(string(b), "PRIVATE KEY") {
				found = x
			}
			// config_dump holds each resource as a JSON document in a string.
			if strings.HasPrefix(x, "{") {
				if s := privateKeyInBase64([]byte(x)); s != "" {
					found = s
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return found
}
