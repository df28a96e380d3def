package rig

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNetworkPodsReachableAndIsolated(t *testing.T) {
	n := StartNetwork(t)
	a := n.AddPod(t, "a", "198.18.1.1")
	b := n.AddPod(t, "b", "198.18.1.2")
	a.StartEcho(t, 8080, "svc-a", "v1")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://198.18.1.1:8080/x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("root namespace cannot reach pod a: %v", err)
	}
	resp.Body.Close()
	if resp.Header.Get("x-echo-service") != "svc-a" {
		t.Errorf("answer not from svc-a: %v", resp.Header)
	}
	// Pod to pod over the bridge works; pods have no default route.
	if out, err := b.Command("ip", "route").CombinedOutput(); err != nil || strings.Contains(string(out), "default") {
		t.Errorf("pod b routes: %v %s", err, out)
	}
	out, err := b.Command("ip", "route", "get", "198.18.1.1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "eth0") {
		t.Errorf("pod b cannot route to pod a: %v %s", err, out)
	}
	if out, err := b.Command("ip", "route", "get", "8.8.8.8").CombinedOutput(); err == nil {
		t.Errorf("pod b has a route to a real address: %s", out)
	}
}
