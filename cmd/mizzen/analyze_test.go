package main

import (
	"bytes"
	"context"
	"errors"
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
