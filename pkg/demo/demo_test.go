package demo

import (
	"encoding/json"
	"testing"
)

// The demo's apps come from the example's Pods and EndpointSlices, so they
// listen exactly where mizzen sends the gateway's traffic.
func TestWorkloadsOfBookinfo(t *testing.T) {
	ws, err := Workloads("../../examples/bookinfo")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Workload{
		"productpage-v1-0": {"productpage-v1-0", "productpage", "v1", "127.0.1.1:9080"},
		"details-v1-0":     {"details-v1-0", "details", "v1", "127.0.1.2:9080"},
		"ratings-v1-0":     {"ratings-v1-0", "ratings", "v1", "127.0.1.3:9080"},
		"reviews-v1-0":     {"reviews-v1-0", "reviews", "v1", "127.0.1.4:9080"},
		"reviews-v2-0":     {"reviews-v2-0", "reviews", "v2", "127.0.1.5:9080"},
		"reviews-v3-0":     {"reviews-v3-0", "reviews", "v3", "127.0.1.6:9080"},
	}
	if len(ws) != len(want) {
		t.Fatalf("got %d workloads %v, want %d", len(ws), ws, len(want))
	}
	for _, w := range ws {
		if want[w.Pod] != w {
			t.Errorf("got %+v, want %+v", w, want[w.Pod])
		}
	}
}

func TestGatewayBootstrap(t *testing.T) {
	raw, err := GatewayBootstrap("127.0.0.20", "127.0.0.1:15010", "127.0.0.20:15000")
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Node struct {
			ID       string         `json:"id"`
			Metadata map[string]any `json:"metadata"`
		} `json:"node"`
		Static struct {
			Clusters []struct {
				Name string `json:"name"`
				LA   struct {
					Endpoints []struct {
						LB []struct {
							Endpoint struct {
								Address struct {
									Socket struct {
										Address string `json:"address"`
										Port    int    `json:"port_value"`
									} `json:"socket_address"`
								} `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"load_assignment"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	if b.Node.ID != "router~127.0.0.20~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local" {
		t.Errorf("node ID %q", b.Node.ID)
	}
	if b.Node.Metadata["MIZZEN_GATEWAY_BIND_IP"] != "127.0.0.20" || b.Node.Metadata["NAMESPACE"] != "istio-system" {
		t.Errorf("metadata %v", b.Node.Metadata)
	}
	c := b.Static.Clusters
	if len(c) != 1 || c[0].Name != "xds-grpc" || c[0].LA.Endpoints[0].LB[0].Endpoint.Address.Socket.Port != 15010 {
		t.Errorf("xds cluster %+v", c)
	}
	if _, err := GatewayBootstrap("127.0.0.20", "nope", "127.0.0.20:15000"); err == nil {
		t.Error("a bad xDS address was accepted")
	}
}
