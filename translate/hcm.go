package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// Filter names as Envoy registers them.
const (
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
	routerFilterName   = "envoy.filters.http.router"
)

// hcmOptions are the few knobs that differ between sidecars and gateways.
type hcmOptions struct {
	statPrefix string
	// rds names a route table fetched over ADS; inline is used instead when set.
	rds    string
	inline *routev3.RouteConfiguration
	// gateway: trust the connection's peer as the client (edge), ignore Host ports.
	gateway bool
	// routeFilters adds the CORS and fault filters that VirtualService routes
	// configure per route (outbound sidecar and gateway listeners, as in Istio).
	routeFilters bool
	// authz are RBAC filters (rbac.go), run right before the router.
	authz []*hcmv3.HttpFilter
	// authFilters come first in the chain: jwt_authn (jwt.go), so that the RBAC
	// filters (authz) see the verified token's payload.
	authFilters []*hcmv3.HttpFilter
	// forwardClientCert: the chain terminates Istio mTLS, so tell the app who
	// called (x-forwarded-client-cert with the caller's URI=spiffe://…), as
	// Istio's inbound does. Plaintext chains keep Envoy's default: sanitize,
	// so no caller can claim an identity it did not prove.
	forwardClientCert bool
	// sniffedALPN: the chain is a sniffed port's HTTP branch, whose upstream
	// mTLS must say it carries HTTP (listeners_sniffing.go).
	sniffedALPN bool
}

func httpConnectionManagerFilter(o hcmOptions) *listenerv3.Filter {
	filters := append([]*hcmv3.HttpFilter(nil), o.authFilters...)
	if o.sniffedALPN {
		filters = append(filters, sniffedALPNFilter())
	}
	if o.routeFilters {
		// Istio's order: CORS answers preflights before a fault can abort them.
		filters = append(filters, corsHTTPFilter(), faultHTTPFilter())
	}
	filters = append(filters, o.authz...)
	filters = append(filters, &hcmv3.HttpFilter{Name: routerFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}})
	m := &hcmv3.HttpConnectionManager{
		StatPrefix:       o.statPrefix,
		CodecType:        hcmv3.HttpConnectionManager_AUTO,
		HttpFilters:      filters,
		UseRemoteAddress: boolv(o.gateway),
		NormalizePath:    boolv(true),
	}
	if o.forwardClientCert {
		m.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		m.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: boolv(true), Dns: true, Uri: true}
	}
	if o.gateway {
		m.StripPortMode = &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
	}
	if o.inline != nil {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: o.inline}
	} else {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: o.rds}}
	}
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)}}
}

func tcpProxyFilter(statPrefix, cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	})}}
}
