package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInjectCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	in := write("app.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: app}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
	injector := write("injector.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-sidecar-injector}\ndata:\n  values: '{\"global\": {\"proxy\": {\"image\": \"example/envoy:1\"}}}'\n")
	meshCM := write("mesh-cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: 'defaultConfig: {discoveryAddress: \"mizzen.x.svc:15012\"}'\n")
	meshRaw := write("mesh.yaml", "defaultConfig:\n  discoveryAddress: raw.x.svc:15012\n")
	var out bytes.Buffer
	if err := runInject(injectOptions{file: in, injectorConfig: injector, meshConfig: meshCM}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"image: example/envoy:1", `"target_uri": "mizzen.x.svc:15012"`, "name: istio-init", "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	outFile := filepath.Join(dir, "out.yaml")
	if err := runInject(injectOptions{file: "-", output: outFile, meshConfig: meshRaw}, strings.NewReader(out.String()), nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(outFile)
	if string(again) != out.String() {
		t.Errorf("injecting the injected output changed it")
	}
	var fresh bytes.Buffer
	if err := runInject(injectOptions{file: in, meshConfig: meshRaw}, nil, &fresh, io.Discard); err != nil || !strings.Contains(fresh.String(), "raw.x.svc:15012") {
		t.Errorf("plain MeshConfig file not used: %v", err)
	}
	for _, o := range []injectOptions{{file: in, injectorConfig: meshRaw}, {file: filepath.Join(dir, "missing")},
		{file: write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containerz: []}\n")}} {
		if err := runInject(o, nil, &bytes.Buffer{}, io.Discard); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestCaptureCommandDryRun(t *testing.T) {
	cmd := newCaptureCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
		"-d", "15090,15021,15020", "-o", "5432", "--dry-run"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN") || !strings.HasPrefix(out.String(), "*nat\n") {
		t.Errorf("rules:\n%s", out.String())
	}
	cmd = newCaptureCommand()
	cmd.SetArgs([]string{"-m", "TPROXY", "--dry-run"})
	cmd.SetOut(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "only REDIRECT") {
		t.Errorf("TPROXY: %v", err)
	}
}

func TestWebhookServingNames(t *testing.T) {
	o := serveOptions{systemNamespace: "mesh", servingNames: []string{"istiod.mesh.svc", "198.18.0.1"}}
	got := strings.Join(webhookServingNames(o, "127.0.0.1:15017"), ",")
	if got != "istiod.mesh.svc,istiod.mesh.svc.cluster.local,198.18.0.1,127.0.0.1" {
		t.Errorf("names %s", got)
	}
	if got := webhookServingNames(o, "0.0.0.0:15017"); len(got) != 3 {
		t.Errorf("unspecified address added: %v", got)
	}
}
