// Package xdstest runs a real go-control-plane ADS server (SnapshotCache, one
// snapshot for every node) on 127.0.0.1:0 for xdsload's tests.
package xdstest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
)

// RouteName is the RDS route of the test listener.
const RouteName = "80"

// Server is an in-process ADS server.
type Server struct {
	Addr  string
	cache cachev3.SnapshotCache

	mu       sync.Mutex
	requests []*discovery.DiscoveryRequest
	deltas   []*discovery.DeltaDiscoveryRequest
}

type oneHash struct{}

func (oneHash) ID(*core.Node) string { return "all" }

// Start serves ADS until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cache: cachev3.NewSnapshotCache(true, oneHash{}, nil)}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discovery.DiscoveryRequest) error {
			s.mu.Lock()
			s.requests = append(s.requests, r)
			s.mu.Unlock()
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discovery.DeltaDiscoveryRequest) error {
			s.mu.Lock()
			s.deltas = append(s.deltas, r)
			s.mu.Unlock()
			return nil
		},
	}
	xds := serverv3.NewServer(ctx, s.cache, cb)
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, xds)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.Addr = lis.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		cancel()
		gs.Stop()
		<-done
	})
	return s
}

// Requests returns every request the server received so far.
func (s *Server) Requests() []*discovery.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discovery.DiscoveryRequest(nil), s.requests...)
}

// DeltaRequests returns every delta request the server received so far.
func (s *Server) DeltaRequests() []*discovery.DeltaDiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discovery.DeltaDiscoveryRequest(nil), s.deltas...)
}

// EDSName is the EDS service name of test cluster i: cluster 0 has none (its
// cluster name is used), the others set eds_cluster_config.service_name.
func EDSName(i int) string {
	if i == 0 {
		return ClusterName(0)
	}
	return fmt.Sprintf("eds-%d", i)
}

// ClusterName is the name of test cluster i.
func ClusterName(i int) string {
	return fmt.Sprintf("outbound|8080||svc-%d.bench.svc.cluster.local", i)
}

// SetSnapshot installs a consistent snapshot with the given version and number
// of EDS clusters (with their ClusterLoadAssignments), one STATIC cluster, one
// listener whose HCM uses RDS route "80", and route config "80".
func (s *Server) SetSnapshot(t testing.TB, version string, clusters int) {
	t.Helper()
	if err := s.Set(version, clusters); err != nil {
		t.Fatal(err)
	}
}

// Set is SetSnapshot for goroutines other than the test's.
func (s *Server) Set(version string, clusters int) error {
	snap, err := Snapshot(version, clusters)
	if err != nil {
		return err
	}
	return s.cache.SetSnapshot(context.Background(), "all", snap)
}

// Snapshot builds the snapshot SetSnapshot installs.
func Snapshot(version string, clusters int) (*cachev3.Snapshot, error) {
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}, ResourceApiVersion: core.ApiVersion_V3}
	var cds, eds []types.Resource
	var vhosts []*routev3.VirtualHost
	for i := range clusters {
		c := &clusterv3.Cluster{
			Name:                 ClusterName(i),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads},
		}
		if i > 0 {
			c.EdsClusterConfig.ServiceName = EDSName(i)
		}
		cds = append(cds, c)
		eds = append(eds, &endpointv3.ClusterLoadAssignment{
			ClusterName: EDSName(i),
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &core.Address{
					Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
						Address: fmt.Sprintf("127.0.0.%d", 10+i), PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080},
					}},
				}}},
			}}}},
		})
		vhosts = append(vhosts, &routev3.VirtualHost{
			Name:    fmt.Sprintf("svc-%d:8080", i),
			Domains: []string{fmt.Sprintf("svc-%d.bench.svc.cluster.local", i)},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterName(i)}}},
			}},
		})
	}
	cds = append(cds, &clusterv3.Cluster{Name: "BlackHoleCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}})

	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound_0.0.0.0_80",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: RouteName}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, err
	}
	lis := &listenerv3.Listener{
		Name: "0.0.0.0_80",
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 80},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       wellknown.HTTPConnectionManager,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}
	rc := &routev3.RouteConfiguration{Name: RouteName, VirtualHosts: vhosts}

	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  cds,
		resourcev3.EndpointType: eds,
		resourcev3.ListenerType: {lis},
		resourcev3.RouteType:    {rc},
	})
	if err != nil {
		return nil, err
	}
	return snap, snap.Consistent()
}
