package translate

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	securityapi "istio.io/api/security/v1beta1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// RequestAuthentication → envoy.filters.http.jwt_authn.
//
// One provider per JWTRule of every RequestAuthentication that selects the
// proxy (model.RequestAuthenticationsFor), named "origins-<i>" in that order.
// The one requirement, for every path, is requires_any {origins-0, ...,
// allow_missing}: a request without a token passes, a request whose token
// fails every provider gets 401 — Istio's semantics, where a
// RequestAuthentication alone never demands a token (an AuthorizationPolicy
// with requestPrincipals does that).
//
// Metadata contract for RBAC (Istio's istio_authn filter, which Envoy does
// not have, is replaced by this): every provider writes the verified token's
// payload into dynamic metadata
//
//	filter (namespace): JWTAuthnFilterName  = "envoy.filters.http.jwt_authn"
//	key:                JWTPayloadMetadataKey = "jwt_payload"
//
// so claim <c> is at path [jwt_payload, <c>] (nested claims [jwt_payload, a, b]).
// Istio's request.auth.principal is "<iss>/<sub>": a requestPrincipal matches
// on [jwt_payload, iss] and [jwt_payload, sub] (both present = "*"; an exact
// "A/B" is the OR over every "/" in it of iss == left AND sub == right, since
// issuers are often URLs with slashes). The iss claim is trustworthy: a
// provider only accepts tokens whose iss is its issuer. Metadata is only
// written for a verified token, so its absence means "no request principal".
// The jwt_authn filter comes first in the HTTP filter chain, before any RBAC.

const (
	JWTAuthnFilterName    = "envoy.filters.http.jwt_authn"
	JWTPayloadMetadataKey = "jwt_payload"

	defaultJWKSFetchTimeout = 5 * time.Second
	jwksCacheDuration       = 5 * time.Minute
)

// jwtRule is one rule with where its remote JWKS comes from.
type jwtRule struct {
	rule    *securityapi.JWTRule
	cluster string         // remote JWKS: the cluster http_uri names
	own     *model.JWKSURI // remote JWKS needing a dedicated cluster
}

func jwtRulesFor(snap *model.Snapshot, proxy *model.Proxy) []jwtRule {
	var out []jwtRule
	var view *model.Snapshot
	for _, ra := range snap.RequestAuthenticationsFor(proxy) {
		for _, r := range ra.Spec.GetJwtRules() {
			jr := jwtRule{rule: r}
			if r.GetJwks() == "" {
				u, err := model.ParseJWKSURI(r.GetJwksUri())
				if err != nil {
					continue // validation dropped such objects already
				}
				if view == nil {
					view = snap.View(snap.ScopeFor(proxy))
				}
				// A mesh service the proxy sees: its outbound cluster (and its
				// DestinationRule) carries the fetch, as in Istio.
				if svc := view.Service(u.Host); svc != nil && svc.PortByNumber(u.Port) != nil && !u.HostIP {
					jr.cluster = OutboundClusterName(u.Port, "", u.Host)
				} else {
					jr.cluster = JWKSClusterName(u.Host, u.Port)
					jr.own = &u
				}
			}
			out = append(out, jr)
		}
	}
	return out
}

// JWKSClusterName names the dedicated cluster for a jwksUri host that is no
// mesh service.
func JWKSClusterName(host string, port uint32) string {
	return "jwks|" + itoa(port) + "||" + host
}

// jwtHTTPFilters returns the proxy's jwt_authn filter, or nothing when no
// RequestAuthentication selects it.
func jwtHTTPFilters(snap *model.Snapshot, proxy *model.Proxy) []*hcmv3.HttpFilter {
	rules := jwtRulesFor(snap, proxy)
	if len(rules) == 0 {
		return nil
	}
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	req := &jwtv3.JwtRequirementOrList{}
	for i, jr := range rules {
		name := fmt.Sprintf("origins-%d", i)
		cfg.Providers[name] = jwtProvider(jr)
		req.Requirements = append(req.Requirements, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}})
	}
	req.Requirements = append(req.Requirements, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
			RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: req},
		}},
	}}
	return []*hcmv3.HttpFilter{{Name: JWTAuthnFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}}
}

func jwtProvider(jr jwtRule) *jwtv3.JwtProvider {
	r := jr.rule
	p := &jwtv3.JwtProvider{
		Issuer:               r.GetIssuer(),
		Audiences:            r.GetAudiences(),
		Forward:              r.GetForwardOriginalToken(),
		FromParams:           r.GetFromParams(),
		FromCookies:          r.GetFromCookies(),
		ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
		PayloadInMetadata:    JWTPayloadMetadataKey,
	}
	for _, h := range r.GetFromHeaders() {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	for _, c := range r.GetOutputClaimToHeaders() {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
	}
	if sd := r.GetSpaceDelimitedClaims(); len(sd) > 0 {
		p.NormalizePayloadInMetadata = &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: sd}
	}
	if r.GetJwks() != "" {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: r.GetJwks()},
		}}
		return p
	}
	timeout := defaultJWKSFetchTimeout
	if t := r.GetTimeout(); t != nil {
		timeout = t.AsDuration()
	}
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{
			Uri:              r.GetJwksUri(),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: jr.cluster},
			Timeout:          dur(timeout),
		},
		CacheDuration: dur(jwksCacheDuration),
		// Fetch in the background: an unreachable JWKS server must not keep
		// the listener from warming (tokens fail with 401 until it answers).
		AsyncFetch: &jwtv3.JwksAsyncFetch{FastListener: true},
	}}
	return p
}

// JWTClusters are the dedicated clusters the proxy's remote JWKS are fetched
// through: STRICT_DNS for host names, STATIC for IP literals, TLS with SNI
// (host names) and the system trust store for https.
func JWTClusters(snap *model.Snapshot, proxy *model.Proxy) []*clusterv3.Cluster {
	seen := map[string]bool{}
	var out []*clusterv3.Cluster
	for _, jr := range jwtRulesFor(snap, proxy) {
		if jr.own == nil || seen[jr.cluster] {
			continue
		}
		seen[jr.cluster] = true
		out = append(out, jwksCluster(jr.cluster, *jr.own))
	}
	return out
}

func jwksCluster(name string, u model.JWKSURI) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
		ConnectTimeout:       dur(defaultConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(u.Host, u.Port)}},
			}}}},
		},
	}
	if u.HostIP {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		c.DnsLookupFamily = clusterv3.Cluster_AUTO
	}
	if u.HTTPS {
		// The chain must end at a system root, and the certificate must be for
		// the URI's host: Envoy checks it against the request's Host (the
		// jwksUri host) with auto_san_validation. The roots are the trust
		// store file (as for DestinationRule SIMPLE without caCertificates):
		// Envoy does not implement system_root_certs, so naming it would
		// leave the fetch unverified.
		tc := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: SystemRootsFile}},
			}},
		}}
		c.TypedExtensionProtocolOptions = httpProtocolOptions(&upstreamhttp.HttpProtocolOptions{
			UpstreamHttpProtocolOptions: &corev3.UpstreamHttpProtocolOptions{AutoSni: true, AutoSanValidation: true},
		})
		if !u.HostIP {
			tc.Sni = u.Host
		}
		c.TransportSocket = &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tc)},
		}
	}
	return c
}
