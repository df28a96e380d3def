package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestBootstrapCommand(t *testing.T) {
	cmd := newBootstrapCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--ip", "10.1.0.9", "--pod", "client-0", "--namespace", "shop", "--service-account", "client",
		"--label", "app=client", "--discovery-address", "127.0.0.1:15012", "--admin-address", "10.1.0.9:15000"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var b struct {
		Node struct {
			ID       string         `json:"id"`
			Metadata map[string]any `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if b.Node.ID != "sidecar~10.1.0.9~client-0.shop~shop.svc.cluster.local" {
		t.Errorf("node id %q", b.Node.ID)
	}
	for k, want := range map[string]any{"NAMESPACE": "shop", "SERVICE_ACCOUNT": "client", "MIZZEN_ADMIN_ADDRESS": "10.1.0.9:15000"} {
		if b.Node.Metadata[k] != want {
			t.Errorf("metadata %s = %v, want %v", k, b.Node.Metadata[k], want)
		}
	}
	cmd = newBootstrapCommand()
	cmd.SetArgs([]string{"--ip", "10.1.0.9"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err == nil {
		t.Error("missing --pod and --namespace accepted")
	}
}

func TestBootstrapCommandRouter(t *testing.T) {
	cmd := newBootstrapCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--router", "--ip", "10.1.0.20", "--pod", "istio-ingressgateway-0", "--namespace", "istio-system",
		"--service-account", "istio-ingressgateway", "--label", "istio=ingressgateway"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var b struct {
		Node struct {
			ID       string         `json:"id"`
			Metadata map[string]any `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if b.Node.ID != "router~10.1.0.20~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local" {
		t.Errorf("node id %q, want a router's", b.Node.ID)
	}
	if l, _ := b.Node.Metadata["LABELS"].(map[string]any); l["istio"] != "ingressgateway" {
		t.Errorf("LABELS = %v", b.Node.Metadata["LABELS"])
	}
}
