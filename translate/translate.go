// Package translate turns a model snapshot and a proxy into Envoy resources.
// Every function here is pure: same snapshot and proxy in, same protos out.
//
// Where each Istio field is translated (field by field, with what is not
// applied and how that is reported: pkg/model/coverage_table.go, checked
// against istio.io/api's descriptors by pkg/model's TestFieldCoverage; kinds
// mizzen does not implement: pkg/model/unimplemented.go):
//
//	VirtualService http match      route_match.go
//	VirtualService http route      routes_virtualservice.go (destinations, timeout; the list
//	                                 stops after a catch-all route, as istiod's)
//	VirtualService http headers    headers.go
//	VirtualService http retries    route_retry.go
//	VirtualService http fault      route_fault.go
//	VirtualService http mirror(s)  route_mirror.go
//	VirtualService http corsPolicy route_cors.go
//	VirtualService http redirect,
//	  directResponse               route_redirect.go
//	VirtualService http rewrite    route_rewrite.go
//	VirtualService http delegate   pkg/model/build_virtualservice.go (merged before translation)
//	VirtualService tcp             routes_tcp.go
//	VirtualService tls             routes_tls.go
//	sidecar outbound route tables  routes_sidecar.go
//	Gateway servers -> routes      routes_gateway.go
//	Gateway servers -> listeners   gateway_plan.go (which servers share a listener, bind,
//	                                 targetPort; kinds: pkg/model/gateway_servers.go),
//	                                 listeners_gateway.go (HTTP, TCP), listeners_gateway_tls.go
//	Gateway server tls (HTTPS/TLS
//	  SIMPLE, MUTUAL, OPTIONAL_MUTUAL,
//	  ISTIO_MUTUAL, credentialName(s),
//	  serverCertificate/privateKey/
//	  caCertificates, SANs, SPKI,
//	  hash, min/maxProtocolVersion,
//	  cipherSuites)                listeners_gateway_tls.go (credentials from Secrets:
//	                                 pkg/model/credentials.go; served over SDS: xds/gateway_secrets.go)
//	Gateway server tls PASSTHROUGH,
//	  AUTO_PASSTHROUGH, protocol
//	  TCP; VirtualService tcp/tls
//	  bound to a Gateway           listeners_gateway_tcp.go (AUTO_PASSTHROUGH clusters: GatewayClusters)
//	Gateway server bind            gateway_plan.go (listener <bind>_<port>, routes http.<port>.<bind>)
//	Gateway server httpsRedirect   routes_gateway.go (vhost require_tls ALL)
//	sidecar listeners              listeners_sidecar.go
//	Service port protocol (name,
//	  appProtocol) unset: sniffing listeners_sniffing.go (http_inspector, HTTP and TCP
//	                                 branches out and in; MeshConfig protocolDetectionTimeout)
//	DestinationRule subsets        clusters.go, endpoints.go
//	DestinationRule precedence     cluster_traffic_policy.go (host < portLevelSettings < subset < subset port)
//	DestinationRule loadBalancer   loadbalancer.go (simple, consistentHash → RING_HASH/MAGLEV)
//	  localityLbSetting (and
//	  MeshConfig's)               endpoints_locality.go (distribute, failover, failoverPriority;
//	                                 localities: pkg/model/locality.go — EndpointSlice zone/nodeName,
//	                                 Node labels, ServiceEntry endpoint locality, the proxy's own)
//	  consistentHash hash key      route_hash_policy.go (route hash_policy)
//	DestinationRule connectionPool cluster_connection_pool.go
//	DestinationRule outlierDetect. cluster_outlier_detection.go
//	DestinationRule exportTo       pkg/model/destinationrule.go (which rule a proxy namespace sees)
//	ServiceEntry resolution        clusters_resolution.go (hosts: pkg/model/serviceentry.go)
//	ServiceEntry subjectAltNames   pkg/model/identity.go (ServiceIdentities: SANs of mTLS to its hosts)
//	headless Service (clusterIP
//	  None)                        listeners_headless.go (listener per pod), clusters_resolution.go
//	                                 (ORIGINAL_DST), mtls_outbound.go (mTLS if all pods have sidecars),
//	                                 routes_sidecar.go (*.<name> domains)
//	ExternalName Service           pkg/model/externalname.go (alias of a mesh host: routes_sidecar.go
//	                                 domains; else a DNS service: clusters_resolution.go)
//	Sidecar egress, exportTo       pkg/model/scope.go (translators see a scoped view)
//	RequestAuthentication          translate/jwt.go (jwt_authn filter, JWKS clusters; which
//	                                 policies apply: pkg/model/requestauthentication.go)
//	Sidecar ingress listeners      listeners_sidecar.go (sidecarIngressPorts), clusters.go (inboundStatic)
//	AuthorizationPolicy            pkg/model/authorization.go (validation, selection); rbac.go (RBAC filters
//	                               on inbound chains, action order, fail closed)
//	  from, when (caller side)     rbac_principals.go
//	  to, when (destination side)  rbac_permissions.go (paths: "*" only leading or trailing, else
//	                                 literal; path templates {*} {**} → uri_template, as istiod)
//	  on gateways                  listeners_gateway.go (RBAC in every gateway HCM)
//	PeerAuthentication             pkg/model/peerauthentication.go (validation, precedence:
//	                                 MTLSFor); mtls_inbound.go (chains per mode, passthrough,
//	                                 tls_inspector), listeners_sidecar.go (virtualInbound, XFCC)
//	DestinationRule tls, auto mTLS mtls_outbound.go (cluster transport sockets, tlsMode
//	                                 endpoint metadata); who may originate it: model.Scope.ClientMTLS
//	                                 (proxy Identity); secure naming SANs: pkg/model/identity.go
//	MeshConfig accessLogFile,
//	  accessLogEncoding/Format     telemetry_accesslog.go (every HCM and tcp_proxy: telemetry.go)
//	MeshConfig enableTracing,
//	  defaultConfig.tracing        telemetry_tracing.go (zipkin; reading, defaults: pkg/model/mesh.go)
//	stats listener :15090          telemetry_stats.go (node metadata MIZZEN_ADMIN_ADDRESS)
package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Output is the full config of one proxy.
type Output struct {
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
}

// ForProxy is the whole translation of one proxy. The xds layer calls the parts
// separately to share what does not depend on the proxy; this function is the
// reference those parts must add up to.
func ForProxy(full *model.Snapshot, proxy *model.Proxy) Output {
	// Outbound config comes from what the proxy may see (exportTo, Sidecar
	// egress); its inbound side from the whole mesh, where its own endpoints are.
	snap := full.View(full.ScopeFor(proxy))
	out := Output{
		Clusters: append(append(StaticClusters(), OutboundClustersFor(snap, proxy.Namespace)...), TelemetryClusters(full, proxy)...),
		// Endpoints may depend on the proxy's locality (locality LB).
		Endpoints: OutboundEndpointsFor(full.View(full.ScopeFor(proxy).WithoutClientMTLS()), proxy.Namespace),
	}
	switch proxy.Type {
	case model.RouterProxy:
		out.Clusters = append(out.Clusters, JWTClusters(snap, proxy)...)
		out.Clusters = append(out.Clusters, GatewayClusters(snap, proxy)...)
		out.Endpoints = append(out.Endpoints, GatewayEndpoints(snap, proxy)...)
		out.Listeners = GatewayListeners(snap, proxy)
		out.Routes = GatewayRoutes(snap, proxy)
		out.Listeners = append(out.Listeners, TelemetryListeners(proxy)...)
	default:
		out.Clusters = append(out.Clusters, InboundClusters(full, proxy)...)
		out.Clusters = append(out.Clusters, JWTClusters(full, proxy)...)
		out.Listeners = append(SidecarOutboundListeners(snap), SidecarOutboundProxyListeners(snap, proxy)...)
		out.Listeners = append(out.Listeners, SidecarInboundListeners(full, proxy)...)
		out.Listeners = append(out.Listeners, TelemetryListeners(proxy)...)
		out.Routes = SidecarOutboundRoutes(snap, proxy)
	}
	return out
}
