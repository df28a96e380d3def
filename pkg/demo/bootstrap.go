package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
)

// GatewayBootstrap is the Envoy bootstrap of the demo's ingress gateway: plain
// ADS to mizzen's loopback xDS port, the node of an istio-ingressgateway pod
// at ip, and mizzen's MIZZEN_GATEWAY_BIND_IP extension so the gateway's
// listeners bind ip instead of 0.0.0.0 (the whole machine).
func GatewayBootstrap(ip, xdsAddr, adminAddr string) ([]byte, error) {
	sock := func(hostport string) (map[string]any, error) {
		h, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hostport, err)
		}
		return map[string]any{"socket_address": map[string]any{"address": h, "port_value": n}}, nil
	}
	xds, err := sock(xdsAddr)
	if err != nil {
		return nil, err
	}
	admin, err := sock(adminAddr)
	if err != nil {
		return nil, err
	}
	b := map[string]any{
		"node": map[string]any{
			"id":      GatewayNodeID(ip),
			"cluster": "istio-ingressgateway.istio-system",
			"metadata": map[string]any{
				"NAMESPACE":              "istio-system",
				"LABELS":                 map[string]any{"istio": "ingressgateway"},
				"INSTANCE_IPS":           ip,
				"CLUSTER_ID":             "Kubernetes",
				"MIZZEN_GATEWAY_BIND_IP": ip,
			},
		},
		"admin": map[string]any{"address": admin},
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{
				"api_type":                       "GRPC",
				"transport_api_version":          "V3",
				"set_node_on_first_message_only": true,
				"grpc_services":                  []any{map[string]any{"envoy_grpc": map[string]any{"cluster_name": "xds-grpc"}}},
			},
			"cds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
			"lds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
		},
		"static_resources": map[string]any{
			"clusters": []any{map[string]any{
				"name":            "xds-grpc",
				"type":            "STATIC",
				"connect_timeout": "1s",
				"load_assignment": map[string]any{
					"cluster_name": "xds-grpc",
					"endpoints":    []any{map[string]any{"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{"address": xds}}}}},
				},
				"typed_extension_protocol_options": map[string]any{
					"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
						"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
						"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
					},
				},
			}},
		},
	}
	return json.MarshalIndent(b, "", "  ")
}
