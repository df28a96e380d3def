package file

import (
	"strings"
	"testing"
)

// Names Kubernetes would refuse are refused here too, naming the object and
// the rule; like any error in a file, the file keeps its last good version.
func TestNamesKubernetesRefuses(t *testing.T) {
	for _, c := range []struct {
		doc, want string
	}{
		{"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: Reviews_Edge, namespace: shop}\nspec: {hosts: [x]}\n",
			`: doc 2 (line 6): VirtualService shop/Reviews_Edge: metadata.name "Reviews_Edge" is not a valid VirtualService name (a DNS-1123 subdomain`},
		{"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: Shop}\nspec: {servers: []}\n",
			`Gateway Shop/edge: metadata.namespace "Shop" is not a valid namespace name (a DNS-1123 label`},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: 9reviews}\nspec: {ports: [{port: 80}]}\n",
			`Service default/9reviews: metadata.name "9reviews" is not a valid Service name (a DNS-1035 label`},
		{"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop.prod}\n",
			`Namespace shop.prod: metadata.name "shop.prod" is not a valid Namespace name (a DNS-1123 label`},
		{"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: \"web app\"}\n",
			`ServiceAccount default/web app: items[0]: metadata.name "web app"`},
	} {
		dir := t.TempDir()
		s := New(dir, Options{Logger: quietLogger()})
		writeFile(t, dir, "a.yaml", serviceAccounts("before"))
		if _, errs := s.Load(); len(errs) != 0 {
			t.Fatal(errs)
		}
		writeFile(t, dir, "a.yaml", serviceAccounts("after")+"---\n"+c.doc)
		in, errs := s.Load()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) || errs[0].Code != CodeInvalidName {
			t.Errorf("errors = %v, want one %s error containing %q", errs, CodeInvalidName, c.want)
		}
		if got := names(in); got != "before" {
			t.Errorf("served %q, want the file's last good version %q", got, "before")
		}
	}
}

// A Secret of type kubernetes.io/tls without tls.crt cannot exist in a
// cluster, and would be skipped unread as no gateway credential: in a file it
// is refused with what it lacks and holds.
func TestTLSSecretWithoutItsKeys(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", `apiVersion: v1
kind: Secret
metadata: {name: only-key, namespace: istio-system}
type: kubernetes.io/tls
data: {tls.key: a2V5}
---
apiVersion: v1
kind: Secret
metadata: {name: misnamed, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.cert: cert, tls.pem: key}
`)
	writeFile(t, dir, "b.yaml", `apiVersion: v1
kind: Secret
metadata: {name: only-cert, namespace: istio-system}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==}
---
apiVersion: v1
kind: Secret
metadata: {name: opaque, namespace: istio-system}
type: Opaque
data: {tls.key: a2V5}
`)
	in, errs := load(t, dir)
	want := []string{
		`Secret istio-system/only-key: type kubernetes.io/tls needs keys tls.crt and tls.key (Kubernetes refuses it without them); it lacks tls.crt, its keys are [tls.key]`,
		`Secret istio-system/misnamed: type kubernetes.io/tls needs keys tls.crt and tls.key (Kubernetes refuses it without them); it lacks tls.crt and tls.key, its keys are [tls.cert (stringData), tls.pem (stringData)]`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasSuffix(errs[i].Error(), w) || errs[i].Code != CodeInvalidSecret {
			t.Errorf("error %d = %v (%s), want …%s", i, errs[i], errs[i].Code, w)
		}
	}
	// A TLS Secret with tls.crt is read (the model says it lacks a key); an
	// Opaque one without certificate keys is no credential: skipped unread.
	if len(in.Secrets) != 1 || in.Secrets[0].Name != "only-cert" {
		t.Errorf("Secrets = %v, want only-cert", in.Secrets)
	}
}

// For analyze, Secrets that cannot be credentials are kept by name and key
// names: never a value, nor the annotations that could repeat them.
func TestKeepOtherSecretsKeepsKeyNamesOnly(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", `apiVersion: v1
kind: Secret
metadata:
  name: misnamed
  labels: {app: edge}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{\"data\":{\"tls.pem\":\"c2VjcmV0\"}}"}
type: Opaque
data: {tls.pem: c2VjcmV0}
stringData: {tls.cert: secret}
`)
	if in, errs := load(t, dir); len(in.Secrets) != 0 || len(errs) != 0 {
		t.Fatalf("by default: Secrets %v, errors %v; want it skipped", in.Secrets, errs)
	}
	in, errs := New(dir, Options{Logger: quietLogger(), KeepOtherSecrets: true}).Load()
	if len(errs) != 0 || len(in.Secrets) != 1 {
		t.Fatalf("Secrets %v, errors %v", in.Secrets, errs)
	}
	s := in.Secrets[0]
	if s.Namespace != "default" || s.Name != "misnamed" || s.Labels["app"] != "edge" || len(s.Annotations) != 0 || len(s.StringData) != 0 {
		t.Errorf("Secret = %+v", s)
	}
	if len(s.Data) != 2 || s.Data["tls.pem"] != nil || s.Data["tls.cert"] != nil {
		t.Errorf("Data = %v, want the two key names without values", s.Data)
	}
}
