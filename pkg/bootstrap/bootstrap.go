// Package bootstrap renders the Envoy bootstrap of a sidecar that talks to
// mizzen directly, without istio-agent: ADS over TLS to mizzen's secure port
// (15012) with Envoy's Google gRPC client, the mesh root from a file, and the
// pod's projected service-account token (audience istio-ca) sent as a bearer
// token by file-based call credentials. mizzen checks that token with
// TokenReview and serves the workload's certificates (SDS `default` and
// `ROOTCA`) on the same ADS stream.
//
// The bootstrap also carries the one thing istio-agent would otherwise
// provide that must work before mizzen answers: a readiness endpoint on 15021
// (`/healthz/ready`, answered by Envoy's own admin `/ready`, which is 200 only
// once the initial xDS config is in), forwarded to the admin interface that
// stays on 127.0.0.1:15000. The Prometheus stats listener on 15090 and its
// prometheus_stats cluster are not here: mizzen pushes them to every proxy
// whose bootstrap is not istio-agent's (translate/telemetry_stats.go), and
// Envoy refuses a dynamic listener or cluster named like a static one.
package bootstrap

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
)

// Istio's fixed paths and ports, so an injected pod looks like Istio's.
const (
	// RootCertPath is where the istiod-ca-cert volume (ConfigMap
	// istio-ca-root-cert) puts the mesh root.
	RootCertPath = "/var/run/secrets/istio/root-cert.pem"
	// TokenPath is where the istio-token projected volume puts the pod's
	// service-account token for audience istio-ca.
	TokenPath = "/var/run/secrets/tokens/istio-token"
	// DefaultDiscoveryAddress is istiod's secure port as sidecars dial it.
	DefaultDiscoveryAddress = "istiod.istio-system.svc:15012"
	// AdminAddress is Envoy's admin interface: loopback only, as in Istio.
	AdminAddress = "127.0.0.1:15000"
	// ReadinessPort serves /healthz/ready, the path of Istio's readiness probe.
	ReadinessPort = 15021
	ReadinessPath = "/healthz/ready"
	// StatsPort and StatsPath are where mizzen's stats listener serves
	// Envoy's Prometheus stats (pushed by mizzen, not in the bootstrap).
	StatsPort = 15090
	StatsPath = "/stats/prometheus"
	// readinessListener and adminCluster are named so nothing mizzen pushes
	// can collide with them.
	readinessListener = "mizzen_readiness"
	adminCluster      = "mizzen_envoy_admin"
)

// Options describe one sidecar. Every string may carry placeholders that are
// filled later (the injector uses the kubelet's $(VAR) references, as the pod's
// name and address are not known at admission time).
type Options struct {
	// NodeID is `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`.
	NodeID string
	// Cluster is Envoy's service cluster, e.g. `<app>.<ns>`.
	Cluster string
	// Metadata is the node metadata (NAMESPACE, LABELS, SERVICE_ACCOUNT,
	// INSTANCE_IPS, CLUSTER_ID, NAME, …).
	Metadata map[string]any
	// DiscoveryAddress is mizzen's secure port, host:port (default
	// DefaultDiscoveryAddress).
	DiscoveryAddress string
	// ServerName is the name mizzen's certificate is checked against
	// (default: the host of DiscoveryAddress).
	ServerName string
	// RootCertPath and TokenPath default to Istio's paths.
	RootCertPath, TokenPath string
	// AdminAddress defaults to AdminAddress.
	AdminAddress string
	// ReadinessPort defaults to ReadinessPort; -1 leaves the listener out.
	ReadinessPort int
	// Delta selects incremental ADS (DELTA_GRPC) instead of state of the world.
	Delta bool
}

func (o Options) withDefaults() (Options, error) {
	if o.NodeID == "" {
		return o, fmt.Errorf("bootstrap: a node ID is required")
	}
	if o.DiscoveryAddress == "" {
		o.DiscoveryAddress = DefaultDiscoveryAddress
	}
	host, _, err := net.SplitHostPort(o.DiscoveryAddress)
	if err != nil {
		return o, fmt.Errorf("bootstrap: discovery address %q: want host:port: %v", o.DiscoveryAddress, err)
	}
	if o.ServerName == "" {
		o.ServerName = host
	}
	if o.RootCertPath == "" {
		o.RootCertPath = RootCertPath
	}
	if o.TokenPath == "" {
		o.TokenPath = TokenPath
	}
	if o.AdminAddress == "" {
		o.AdminAddress = AdminAddress
	}
	if o.ReadinessPort == 0 {
		o.ReadinessPort = ReadinessPort
	}
	if o.Metadata == nil {
		o.Metadata = map[string]any{}
	}
	return o, nil
}

// Sidecar renders the bootstrap as JSON (which Envoy's --config-yaml and -c
// both accept).
func Sidecar(opts Options) ([]byte, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	adminHost, adminPortS, err := net.SplitHostPort(o.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: admin address %q: %v", o.AdminAddress, err)
	}
	adminPort, err := strconv.Atoi(adminPortS)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: admin address %q: %v", o.AdminAddress, err)
	}
	apiType := "GRPC"
	if o.Delta {
		apiType = "DELTA_GRPC"
	}
	xds := SecureGrpcService(o.DiscoveryAddress, o.RootCertPath, o.TokenPath, o.ServerName)
	var listeners, clusters []any
	if o.ReadinessPort > 0 {
		// Envoy's /ready is 200 "LIVE" once the initial clusters and listeners
		// from mizzen are in, which is what readiness should mean.
		listeners = append(listeners, adminProxyListener(readinessListener, o.ReadinessPort, ReadinessPath, "/ready"))
		clusters = append(clusters, map[string]any{
			"name":            adminCluster,
			"type":            "STATIC",
			"connect_timeout": "0.250s",
			"load_assignment": map[string]any{
				"cluster_name": adminCluster,
				"endpoints": []any{map[string]any{"lb_endpoints": []any{map[string]any{
					"endpoint": map[string]any{"address": socket(adminHost, adminPort)},
				}}}},
			},
		})
	}
	b := map[string]any{
		"node": map[string]any{
			"id":       o.NodeID,
			"cluster":  o.Cluster,
			"metadata": o.Metadata,
		},
		"admin": map[string]any{"address": socket(adminHost, adminPort)},
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{
				"api_type":                       apiType,
				"transport_api_version":          "V3",
				"set_node_on_first_message_only": true,
				"grpc_services":                  []any{xds},
			},
			"cds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
			"lds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
		},
	}
	if len(listeners) > 0 {
		b["static_resources"] = map[string]any{"listeners": listeners, "clusters": clusters}
	}
	return json.Marshal(b)
}

func socket(host string, port int) map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}}
}

// adminProxyListener is a listener on 0.0.0.0:port that forwards path to
// Envoy's admin interface, rewritten to adminPath. Only that path is routed:
// the admin interface itself stays on loopback.
func adminProxyListener(name string, port int, path, adminPath string) map[string]any {
	route := map[string]any{"cluster": adminCluster, "timeout": "5s", "prefix_rewrite": adminPath}
	return map[string]any{
		"name":    name,
		"address": socket("0.0.0.0", port),
		"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
			"name": "envoy.filters.network.http_connection_manager",
			"typed_config": map[string]any{
				"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"stat_prefix": name,
				"codec_type":  "AUTO",
				"route_config": map[string]any{"virtual_hosts": []any{map[string]any{
					"name":    name,
					"domains": []any{"*"},
					"routes": []any{map[string]any{
						"match": map[string]any{"path": path},
						"route": route,
					}},
				}}},
				"http_filters": []any{map[string]any{
					"name":         "envoy.filters.http.router",
					"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
				}},
			},
		}}}},
	}
}

// SecureGrpcService is the bootstrap's grpc_service for mizzen's secure port.
// The Google gRPC client (not envoy_grpc) because only it has call
// credentials: the token file is read by the file-based metadata plugin for
// every new stream and sent as `authorization: Bearer <token>`, which is how
// mizzen learns who the proxy is. The channel verifies mizzen's certificate
// with the mesh root, for serverName.
func SecureGrpcService(discoveryAddress, rootCertPath, tokenPath, serverName string) map[string]any {
	return map[string]any{"google_grpc": map[string]any{
		"target_uri":  discoveryAddress,
		"stat_prefix": "xds-grpc",
		"channel_credentials": map[string]any{"ssl_credentials": map[string]any{
			"root_certs": map[string]any{"filename": rootCertPath},
		}},
		"call_credentials": []any{map[string]any{"from_plugin": map[string]any{
			"name": "envoy.grpc_credentials.file_based_metadata",
			"typed_config": map[string]any{
				"@type":         "type.googleapis.com/envoy.config.grpc_credential.v3.FileBasedMetadataConfig",
				"secret_data":   map[string]any{"filename": tokenPath},
				"header_key":    "authorization",
				"header_prefix": "Bearer ",
			},
		}}},
		"credentials_factory_name": "envoy.grpc_credentials.file_based_metadata",
		"channel_args": map[string]any{"args": map[string]any{
			"grpc.ssl_target_name_override":     map[string]any{"string_value": serverName},
			"grpc.default_authority":            map[string]any{"string_value": serverName},
			"grpc.http2.max_pings_without_data": map[string]any{"int_value": 0},
			"grpc.keepalive_time_ms":            map[string]any{"int_value": 30000},
			"grpc.keepalive_timeout_ms":         map[string]any{"int_value": 10000},
		}},
	}}
}
