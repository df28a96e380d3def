package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAnalyzeNamesObjectAndFieldAndFailsOnErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vs.yaml")
	if err := os.WriteFile(path, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: default}
spec:
  hosts: [reviews]
  gateways: [missing-gateway]
  http:
  - match: [{uri: {regex: "/(unclosed"}}]
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split, namespace: default}
spec:
  hosts: [ratings]
  gateways: [missing-gateway]
  http:
  - route:
    - {destination: {host: ratings, subset: v1}, weight: 50}
    - {destination: {host: ratings, subset: v2}, weight: 50}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := runAnalyze(ctx, analyzeOptions{files: []string{path}, output: "text"}, &out)
	if !errors.Is(err, errFound) {
		t.Fatalf("want errFound, got %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Error [IST0122 InvalidRegex] (VirtualService default/bad spec.http[0].match[0].uri.regex)",
		"Warning [IST0101 ReferencedResourceNotFound] (VirtualService default/split spec.gateways[0])",
		"Warning [IST0101 ReferencedResourceNotFound] (VirtualService default/split spec.http[0].route[0].destination.host)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAnalyzeCleanExample(t *testing.T) {
	var out bytes.Buffer
	err := runAnalyze(context.Background(), analyzeOptions{files: []string{"../../examples/bookinfo"}, output: "json"}, &out)
	if err != nil {
		t.Fatalf("bookinfo has errors: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), `"level": "Error"`) {
		t.Errorf("errors in the shipped example:\n%s", out.String())
	}
}

// analyze -f once dropped every Secret when merging its inputs, so each
// Gateway credential was "no TLS Secret", valid or not: a valid one gives no
// finding, an invalid one says what is wrong with it.
func TestAnalyzeReadsGatewaySecrets(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shop.example.com"},
		DNSNames: []string{"shop.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(typ string, der []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-good, protocol: HTTPS}
    hosts: ["shop.example.com"]
    tls: {mode: SIMPLE, credentialName: good}
  - port: {number: 443, name: https-bad, protocol: HTTPS}
    hosts: ["bad.example.com"]
    tls: {mode: SIMPLE, credentialName: bad}
---
apiVersion: v1
kind: Secret
metadata: {name: good, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: `+b64("CERTIFICATE", der)+`
  tls.key: `+b64("PRIVATE KEY", keyDER)+`
---
apiVersion: v1
kind: Secret
metadata: {name: bad, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: `+b64("CERTIFICATE", der[:len(der)/2])+`
  tls.key: `+b64("PRIVATE KEY", keyDER)+`
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = runAnalyze(context.Background(), analyzeOptions{files: []string{dir}, output: "text"}, &out)
	if !errors.Is(err, errFound) {
		t.Fatalf("want errFound for the bad Secret, got %v\n%s", err, out.String())
	}
	got := out.String()
	if strings.Contains(got, "no TLS Secret") || strings.Contains(got, "servers[0]") {
		t.Errorf("a Secret in the input is reported missing, or the good one is reported:\n%s", got)
	}
	if want := "Error [IST0161 InvalidCredential] (Gateway istio-system/edge spec.servers[1].tls.credentialName) Secret istio-system/bad: "; !strings.Contains(got, want) {
		t.Errorf("output lacks %q:\n%s", want, got)
	}
}
