// Package explain walks a proxy's computed Envoy config the way Envoy would
// for one request — listener, filter chain, virtual host, route, weighted
// destinations, cluster, endpoints — and, on the destination's side, its
// inbound chain and RBAC policies, saying at each step what matched and why.
// It reads protos only (mizzen's /debug/config_dump), so it explains exactly
// what was pushed, not what the model meant to push.
package explain

import (
	"encoding/json"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Config is one proxy's resources, by name.
type Config struct {
	ProxyID   string
	Listeners []*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
}

// ParseDump reads mizzen's /debug/config_dump?proxyID= answer:
// {"cds": {"version": .., "resources": [Any as JSON]}, "eds": .., "lds": .., "rds": ..}.
func ParseDump(proxyID string, data []byte) (*Config, error) {
	var dump map[string]struct {
		Resources []json.RawMessage `json:"resources"`
	}
	if err := json.Unmarshal(data, &dump); err != nil {
		return nil, fmt.Errorf("config dump of %s: %w", proxyID, err)
	}
	cfg := &Config{ProxyID: proxyID, Routes: map[string]*routev3.RouteConfiguration{},
		Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}}
	opts := protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: lenientResolver{}}
	for typ, d := range dump {
		for _, raw := range d.Resources {
			a := &anypb.Any{}
			if err := opts.Unmarshal(raw, a); err != nil {
				return nil, fmt.Errorf("config dump of %s (%s): %w", proxyID, typ, err)
			}
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("config dump of %s (%s): %w", proxyID, typ, err)
			}
			switch r := m.(type) {
			case *listenerv3.Listener:
				cfg.Listeners = append(cfg.Listeners, r)
			case *routev3.RouteConfiguration:
				cfg.Routes[r.GetName()] = r
			case *clusterv3.Cluster:
				cfg.Clusters[r.GetName()] = r
			case *endpointv3.ClusterLoadAssignment:
				cfg.Endpoints[r.GetClusterName()] = r
			}
		}
	}
	return cfg, nil
}

// lenientResolver resolves every type this package needs and turns any other
// (a filter explain does not look into) into Empty, so a config that uses an
// extension explain was not built with still parses.
type lenientResolver struct{}

func (lenientResolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(n)
}

func (lenientResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if errors.Is(err, protoregistry.NotFound) {
		return (&emptypb.Empty{}).ProtoReflect().Type(), nil
	}
	return mt, err
}

func (lenientResolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(n)
}

func (lenientResolver) FindExtensionByNumber(m protoreflect.FullName, f protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, f)
}

// typed unpacks a typed_config, or returns nil for types explain ignores.
func typed[M proto.Message](a *anypb.Any, m M) M {
	if a == nil || a.MessageIs(&emptypb.Empty{}) {
		var zero M
		return zero
	}
	if err := a.UnmarshalTo(m); err != nil {
		var zero M
		return zero
	}
	return m
}
