// Package explain walks a proxy's computed Envoy config the way Envoy would
// for one request — listener, filter chain, virtual host, route, weighted
// destinations, cluster, endpoints — and, on the destination's side, its
// inbound chain and RBAC policies, saying at each step what matched and why.
// It reads protos only (mizzen's /debug/config_dump), so it explains exactly
// what was pushed, not what the model meant to push.
package explain

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Config is one proxy's resources, by name (cmd/mizzen reads them from
// mizzen's /debug/config_dump).
type Config struct {
	ProxyID   string
	Listeners []*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
}

// typed unpacks a typed_config, or returns nil for other types (filters
// explain does not look into, or kept opaque by the reader).
func typed[M proto.Message](a *anypb.Any, m M) M {
	if a == nil {
		var zero M
		return zero
	}
	if err := a.UnmarshalTo(m); err != nil {
		var zero M
		return zero
	}
	return m
}
