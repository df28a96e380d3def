package model

// fieldCoverage: see coverage.go. Files are from the repository root.
func fieldCoverage() map[string]map[string]FieldUse {
	const (
		vsBuild   = "pkg/model/build_virtualservice.go"
		vsRoutes  = "translate/routes_virtualservice.go"
		match     = "translate/route_match.go"
		tcp       = "translate/routes_tcp.go"
		tls       = "translate/routes_tls.go"
		headers   = "translate/headers.go"
		policy    = "translate/cluster_traffic_policy.go"
		pool      = "translate/cluster_connection_pool.go"
		outlier   = "translate/cluster_outlier_detection.go"
		lb        = "translate/loadbalancer.go"
		hash      = "translate/route_hash_policy.go"
		mtlsOut   = "translate/mtls_outbound.go"
		gwTLS     = "translate/listeners_gateway_tls.go"
		gwRoutes  = "translate/routes_gateway.go"
		gwServers = "pkg/model/gateway_servers.go"
		locality  = "translate/endpoints_locality.go"
		se        = "pkg/model/serviceentry.go"
		scope     = "pkg/model/scope.go"
		sidecar   = "translate/listeners_sidecar.go"
		authz     = "pkg/model/authorization.go"
		jwt       = "translate/jwt.go"
		tracing   = "translate/telemetry_tracing.go"
		accessLog = "translate/telemetry_accesslog.go"
		mesh      = "pkg/model/mesh.go"
		tpCheck   = "pkg/model/validate_trafficpolicy.go"
		vsCheck   = "pkg/model/validate_virtualservice.go"
	)
	tlsVersions := []string{"TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"}
	agentOnly := "a proxy setting for istio-agent; mizzen's injector renders only discoveryAddress, concurrency and tracing"
	return map[string]map[string]FieldUse{
		"networking.v1alpha3.VirtualService": {
			"hosts": applied("translate/routes_sidecar.go"), "gateways": applied(vsBuild), "http": applied(vsRoutes),
			"tls": applied(tls), "tcp": applied(tcp), "exportTo": applied(scope),
		},
		"networking.v1alpha3.HTTPRoute": {
			"name": applied(vsRoutes), "match": applied(match), "route": applied(vsRoutes), "redirect": applied("translate/route_redirect.go"),
			"directResponse": applied("translate/route_redirect.go"), "delegate": applied(vsBuild), "rewrite": applied("translate/route_rewrite.go"),
			"timeout": applied(vsRoutes), "retries": applied("translate/route_retry.go"), "fault": applied("translate/route_fault.go"),
			"mirror": applied("translate/route_mirror.go"), "mirrors": applied("translate/route_mirror.go"),
			"mirrorPercent": applied("translate/route_mirror.go"), "mirrorPercentage": applied("translate/route_mirror.go"),
			"corsPolicy": applied("translate/route_cors.go"), "headers": applied(headers),
		},
		"networking.v1alpha3.HTTPMatchRequest": {
			"name": applied(vsRoutes), "uri": applied(match), "scheme": applied(match), "method": applied(match), "authority": applied(match),
			"headers": applied(match), "port": applied(vsBuild), "sourceLabels": applied(vsBuild), "gateways": applied(vsBuild),
			"queryParams": applied(match), "ignoreUriCase": applied(match), "withoutHeaders": applied(match), "sourceNamespace": applied(vsBuild),
			"statPrefix": applied(vsRoutes),
		},
		"networking.v1alpha3.StringMatch": {"exact": applied(match), "prefix": applied(match), "regex": applied(match)},
		"networking.v1alpha3.HTTPRouteDestination": {
			"destination": applied(vsRoutes), "weight": applied(vsRoutes), "headers": applied(headers),
		},
		"networking.v1alpha3.Destination":  {"host": applied(vsRoutes), "subset": applied(vsRoutes), "port": applied(vsRoutes)},
		"networking.v1alpha3.PortSelector": {"number": applied(vsRoutes)},
		"networking.v1alpha3.Headers":      {"request": applied(headers), "response": applied(headers)},
		"networking.v1alpha3.Headers.HeaderOperations": {
			"set": applied(headers), "add": applied(headers), "remove": applied(headers),
		},
		"networking.v1alpha3.HTTPRedirect": {
			"uri": applied("translate/route_redirect.go"), "authority": applied("translate/route_redirect.go"), "port": applied("translate/route_redirect.go"),
			"derivePort": applied("translate/route_redirect.go", "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"), "scheme": applied("translate/route_redirect.go"),
			"redirectCode": applied("translate/route_redirect.go"), "prefixRewrite": applied("translate/route_redirect.go"),
		},
		"networking.v1alpha3.HTTPDirectResponse": {"status": applied("translate/route_redirect.go"), "body": applied(headers)},
		"networking.v1alpha3.HTTPBody":           {"string": applied(headers), "bytes": applied(headers)},
		"networking.v1alpha3.Delegate":           {"name": applied(vsBuild), "namespace": applied(vsBuild)},
		"networking.v1alpha3.HTTPRewrite": {
			"uri": applied("translate/route_rewrite.go"), "authority": applied("translate/route_rewrite.go"), "uriRegexRewrite": applied("translate/route_rewrite.go"),
		},
		"networking.v1alpha3.RegexRewrite": {"match": applied("translate/route_rewrite.go"), "rewrite": applied("translate/route_rewrite.go")},
		"networking.v1alpha3.HTTPRetry": {
			"attempts": applied("translate/route_retry.go"), "perTryTimeout": applied("translate/route_retry.go"), "retryOn": applied("translate/route_retry.go"),
			"retryRemoteLocalities": applied("translate/route_retry.go"), "retryIgnorePreviousHosts": applied("translate/route_retry.go"),
			"backoff": applied("translate/route_retry.go"),
		},
		"networking.v1alpha3.HTTPFaultInjection": {"delay": applied("translate/route_fault.go"), "abort": applied("translate/route_fault.go")},
		"networking.v1alpha3.HTTPFaultInjection.Delay": {
			"percent": applied("translate/route_fault.go"), "fixedDelay": applied("translate/route_fault.go"),
			"exponentialDelay": checked(vsCheck), "percentage": applied("translate/route_fault.go"),
		},
		"networking.v1alpha3.HTTPFaultInjection.Abort": {
			"httpStatus": applied("translate/route_fault.go"), "grpcStatus": applied("translate/route_fault.go"),
			"http2Error": checked(vsCheck), "percentage": applied("translate/route_fault.go"),
		},
		"networking.v1alpha3.Percent":          {"value": applied("translate/route_fault.go")},
		"networking.v1alpha3.HTTPMirrorPolicy": {"destination": applied("translate/route_mirror.go"), "percentage": applied("translate/route_mirror.go")},
		"networking.v1alpha3.CorsPolicy": {
			"allowOrigin": applied("translate/route_cors.go"), "allowOrigins": applied("translate/route_cors.go"),
			"allowMethods": applied("translate/route_cors.go"), "allowHeaders": applied("translate/route_cors.go"),
			"exposeHeaders": applied("translate/route_cors.go"), "maxAge": applied("translate/route_cors.go"),
			"allowCredentials": applied("translate/route_cors.go"), "unmatchedPreflights": applied("translate/route_cors.go", "UNSPECIFIED", "FORWARD", "IGNORE"),
		},
		"networking.v1alpha3.TLSRoute": {"match": applied(tls), "route": applied(tls)},
		"networking.v1alpha3.TLSMatchAttributes": {
			"sniHosts": applied(tls), "destinationSubnets": applied(tls), "port": applied(vsBuild), "sourceLabels": applied(vsBuild),
			"gateways": applied(vsBuild), "sourceNamespace": applied(vsBuild),
		},
		"networking.v1alpha3.RouteDestination": {"destination": applied(tcp), "weight": applied(tcp)},
		"networking.v1alpha3.TCPRoute":         {"match": applied(tcp), "route": applied(tcp)},
		"networking.v1alpha3.L4MatchAttributes": {
			"destinationSubnets": applied(tcp), "port": applied(vsBuild), "sourceSubnet": checked(vsCheck), "sourceLabels": applied(vsBuild),
			"gateways": applied(vsBuild), "sourceNamespace": applied(vsBuild),
		},

		"networking.v1alpha3.DestinationRule": {
			"host": applied("pkg/model/destinationrule.go"), "trafficPolicy": applied(policy), "subsets": applied("translate/clusters.go"),
			"exportTo": applied("pkg/model/destinationrule.go"), "workloadSelector": checked("pkg/model/build.go"),
		},
		"networking.v1alpha3.TrafficPolicy": {
			"loadBalancer": applied(lb), "connectionPool": applied(pool), "outlierDetection": applied(outlier), "tls": applied(mtlsOut),
			"portLevelSettings": applied(policy), "tunnel": checked(tpCheck), "proxyProtocol": checked(tpCheck), "retryBudget": checked(tpCheck),
		},
		"networking.v1alpha3.LoadBalancerSettings": {
			"simple":         appliedExcept(lb, []string{"UNSPECIFIED", "LEAST_CONN", "RANDOM", "ROUND_ROBIN", "LEAST_REQUEST"}, "PASSTHROUGH"), // PASSTHROUGH: validate_trafficpolicy.go
			"consistentHash": applied(lb), "localityLbSetting": applied(locality), "zoneAwareLbSetting": checked(tpCheck),
			"warmupDurationSecs": checked(tpCheck), "warmup": checked(tpCheck),
		},
		"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB": {
			"httpHeaderName": applied(hash), "httpCookie": applied(hash), "useSourceIp": applied(hash), "httpQueryParameterName": applied(hash),
			"ringHash": applied(lb), "maglev": applied(lb), "minimumRingSize": applied(lb),
		},
		"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie": {
			"name": applied(hash), "path": applied(hash), "ttl": applied(hash), "attributes": applied(hash),
		},
		"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie.Attribute": {"name": applied(hash), "value": applied(hash)},
		"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.RingHash":             {"minimumRingSize": applied(lb)},
		"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.MagLev":               {"tableSize": applied(lb)},
		"networking.v1alpha3.ConnectionPoolSettings":                                     {"tcp": applied(pool), "http": applied(pool)},
		"networking.v1alpha3.ConnectionPoolSettings.TCPSettings": {
			"maxConnections": applied(pool), "connectTimeout": applied(pool), "tcpKeepalive": applied(pool),
			"maxConnectionDuration": applied(pool), "idleTimeout": applied(pool),
		},
		"networking.v1alpha3.ConnectionPoolSettings.TCPSettings.TcpKeepalive": {"probes": applied(pool), "time": applied(pool), "interval": applied(pool)},
		"networking.v1alpha3.ConnectionPoolSettings.HTTPSettings": {
			"http1MaxPendingRequests": applied(pool), "http2MaxRequests": applied(pool), "maxRequestsPerConnection": applied(pool),
			"maxRetries": applied(pool), "idleTimeout": applied(pool), "h2UpgradePolicy": applied(pool, "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"), "useClientProtocol": applied(pool),
			"maxConcurrentStreams": applied(pool), "http2KeepAlive": checked(tpCheck),
		},
		"networking.v1alpha3.OutlierDetection": {
			"consecutiveErrors": checked(tpCheck), "splitExternalLocalOriginErrors": applied(outlier), "consecutiveLocalOriginFailures": applied(outlier),
			"consecutiveGatewayErrors": applied(outlier), "consecutive5xxErrors": applied(outlier), "interval": applied(outlier),
			"baseEjectionTime": applied(outlier), "maxEjectionPercent": applied(outlier), "minHealthPercent": applied(outlier),
			"outlierDetectionHttpErrorCodes": checked(tpCheck),
		},
		"networking.v1alpha3.ClientTLSSettings": {
			"mode": applied(mtlsOut, "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"), "clientCertificate": applied(mtlsOut), "privateKey": applied(mtlsOut), "caCertificates": applied(mtlsOut),
			"credentialName": applied(mtlsOut), "subjectAltNames": applied(mtlsOut), "sni": applied(mtlsOut), "insecureSkipVerify": applied(mtlsOut),
			"caCrl": applied(mtlsOut),
		},
		"networking.v1alpha3.TrafficPolicy.PortTrafficPolicy": {
			"port": applied(policy), "loadBalancer": applied(lb), "connectionPool": applied(pool), "outlierDetection": applied(outlier), "tls": applied(mtlsOut),
		},
		"networking.v1alpha3.Subset":    {"name": applied("translate/clusters.go"), "labels": applied("translate/clusters.go"), "trafficPolicy": applied(policy)},
		"type.v1beta1.WorkloadSelector": {"matchLabels": applied(authz)},

		"networking.v1alpha3.LocalityLoadBalancerSetting": {
			"distribute": applied(locality), "failover": applied(locality), "enabled": applied(locality),
			// labels other than the topology ones are reported by pkg/model/locality.go
			"failoverPriority": applied(locality),
		},
		"networking.v1alpha3.LocalityLoadBalancerSetting.Distribute": {"from": applied(locality), "to": applied(locality)},
		"networking.v1alpha3.LocalityLoadBalancerSetting.Failover":   {"from": applied(locality), "to": applied(locality)},

		"networking.v1alpha3.Gateway": {"servers": applied("translate/listeners_gateway.go"), "selector": applied("pkg/model/gateway_ports.go")},
		"networking.v1alpha3.Server": {
			"port": applied("translate/listeners_gateway.go"), "hosts": applied(gwRoutes), "tls": applied(gwTLS),
			"name":            ignored("a label for the server; mizzen names listeners and routes after the port"),
			"bind":            applied("translate/gateway_plan.go"),
			"defaultEndpoint": ignored("gateways forward to the routes' destinations only"),
		},
		"networking.v1alpha3.Port": {
			"number": applied("translate/listeners_gateway.go"), "protocol": applied("pkg/model/gateway_ports.go"), "name": applied(gwRoutes),
			"targetPort": ignored("deprecated; gateways bind the Service's targetPort"),
		},
		"networking.v1alpha3.ServerTLSSettings": {
			"httpsRedirect": applied(gwRoutes), "mode": checked(gwServers), "credentialName": applied(gwTLS),
			"serverCertificate": applied(gwTLS), "privateKey": applied(gwTLS), "caCertificates": applied(gwTLS),
			"credentialNames": applied(gwTLS), "subjectAltNames": applied(gwTLS),
			"verifyCertificateSpki": applied(gwTLS), "verifyCertificateHash": applied(gwTLS),
			"minProtocolVersion": applied(gwTLS, tlsVersions...), "maxProtocolVersion": applied(gwTLS, tlsVersions...),
			"cipherSuites": applied(gwTLS),
			// reported by the gateway server check itself, with the server's index
			"caCrl": checked(gwServers), "tlsCertificates": checked(gwServers),
			"caCertCredentialName": checked(gwServers), "insecureSkipVerify": checked(gwServers),
		},

		"networking.v1alpha3.ServiceEntry": {
			"hosts": applied(se), "addresses": applied(se), "ports": applied(se), "location": applied(se, "MESH_EXTERNAL", "MESH_INTERNAL"), "resolution": applied(se, "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"),
			"endpoints": applied(se), "workloadSelector": applied(se), "exportTo": applied(scope),
			"subjectAltNames": applied(mtlsOut),
		},
		"networking.v1alpha3.ServicePort": {"number": applied(se), "protocol": applied(se), "name": applied(se), "targetPort": applied(se)},
		"networking.v1alpha3.WorkloadEntry": {
			"address": applied(se), "ports": applied(se), "labels": applied(se), "serviceAccount": applied(se),
			"network":  ignored("multi-network meshes are not supported"),
			"locality": applied(se),
			"weight":   ignored("endpoints are weighted equally"),
		},
		"networking.v1alpha3.WorkloadSelector": {"labels": applied(se)},

		"networking.v1alpha3.Sidecar": {
			"workloadSelector": applied(scope), "ingress": applied(sidecar), "egress": applied(scope), "outboundTrafficPolicy": applied(scope),
			"inboundConnectionPool": ignored("inbound clusters keep Envoy's default limits"),
		},
		"networking.v1alpha3.IstioIngressListener": {
			"port": applied(sidecar), "defaultEndpoint": applied(sidecar),
			"bind":           ignored("inbound traffic is captured on 15006 (iptables); a bind address is not supported"),
			"captureMode":    ignored("capture is iptables REDIRECT, as istio-init sets it up"),
			"tls":            ignored("inbound TLS comes from PeerAuthentication (mTLS) only"),
			"connectionPool": ignored("inbound clusters keep Envoy's default limits"),
		},
		"networking.v1alpha3.SidecarPort": {
			"number": applied(sidecar), "protocol": applied(sidecar), "name": applied(sidecar),
			"targetPort": ignored("the ingress listener forwards to defaultEndpoint's port"),
		},
		"networking.v1alpha3.IstioEgressListener": {
			"hosts":       applied(scope),
			"port":        ignored("egress listeners are not per port: hosts apply to every port"),
			"bind":        ignored("outbound traffic is captured on 15001 (iptables); a bind address is not supported"),
			"captureMode": ignored("capture is iptables REDIRECT, as istio-init sets it up"),
		},
		"networking.v1alpha3.OutboundTrafficPolicy": {
			"mode":        applied(scope, "REGISTRY_ONLY", "ALLOW_ANY"),
			"egressProxy": ignored("unknown hosts go to PassthroughCluster or BlackHoleCluster; an egress proxy is not supported"),
		},

		"security.v1beta1.PeerAuthentication": {
			"selector": applied("pkg/model/peerauthentication.go"), "mtls": applied("pkg/model/peerauthentication.go"),
			"portLevelMtls": applied("pkg/model/peerauthentication.go"),
		},
		"security.v1beta1.PeerAuthentication.MutualTLS": {
			"mode": appliedExcept("translate/mtls_inbound.go", []string{"UNSET", "DISABLE", "PERMISSIVE", "STRICT"}, OutsideEnum), // peerauthentication.go
		},
		"security.v1beta1.AuthorizationPolicy": {
			"selector": applied(authz), "rules": applied("translate/rbac.go"), "action": checked(authz),
			"targetRef": checked(authz), "targetRefs": checked(authz), "provider": checked(authz),
		},
		"security.v1beta1.Rule":      {"from": applied("translate/rbac_principals.go"), "to": applied("translate/rbac_permissions.go"), "when": applied("translate/rbac.go")},
		"security.v1beta1.Rule.From": {"source": applied("translate/rbac_principals.go")},
		"security.v1beta1.Source": {
			"principals": applied(authz), "notPrincipals": applied(authz), "requestPrincipals": applied(authz),
			"notRequestPrincipals": applied(authz), "namespaces": applied(authz), "notNamespaces": applied(authz),
			"serviceAccounts": applied(authz), "notServiceAccounts": applied(authz), "ipBlocks": applied(authz), "notIpBlocks": applied(authz),
			"remoteIpBlocks": applied(authz), "notRemoteIpBlocks": applied(authz), "trustDomains": checked(authz), "notTrustDomains": checked(authz),
		},
		"security.v1beta1.Rule.To": {"operation": applied(authz)},
		"security.v1beta1.Operation": {
			"hosts": applied(authz), "notHosts": applied(authz), "ports": applied(authz), "notPorts": applied(authz),
			"methods": applied(authz), "notMethods": applied(authz), "paths": applied(authz), "notPaths": applied(authz),
		},
		"security.v1beta1.Condition": {"key": applied(authz), "values": applied(authz), "notValues": applied(authz)},
		"security.v1beta1.RequestAuthentication": {
			"selector": applied("pkg/model/requestauthentication.go"), "jwtRules": applied(jwt),
			"targetRef": checked("pkg/model/requestauthentication.go"), "targetRefs": checked("pkg/model/requestauthentication.go"),
		},
		"security.v1beta1.JWTRule": {
			"issuer": applied(jwt), "audiences": applied(jwt), "jwksUri": applied(jwt), "jwks": applied(jwt), "fromHeaders": applied(jwt),
			"fromParams": applied(jwt), "outputPayloadToHeader": applied(jwt), "fromCookies": applied(jwt), "forwardOriginalToken": applied(jwt),
			"outputClaimToHeaders": applied(jwt), "timeout": applied(jwt), "spaceDelimitedClaims": applied(jwt),
		},
		"security.v1beta1.JWTHeader":     {"name": applied(jwt), "prefix": applied(jwt)},
		"security.v1beta1.ClaimToHeader": {"header": applied(jwt), "claim": applied(jwt)},

		"mesh.v1alpha1.MeshConfig": {
			"trustDomain": applied("pkg/model/identity.go"), "rootNamespace": applied(mesh), "outboundTrafficPolicy": applied(sidecar),
			"accessLogFile": applied(accessLog), "accessLogFormat": applied(accessLog), "accessLogEncoding": applied(accessLog, "TEXT", "JSON"),
			"enableTracing": applied(tracing), "defaultConfig": applied(mesh), "protocolDetectionTimeout": applied(sidecar),
			"defaultDestinationRuleExportTo": applied("pkg/model/build.go"),
			"connectTimeout":                 applied(pool), "tcpKeepalive": applied(pool), "h2UpgradePolicy": applied(pool, "DO_NOT_UPGRADE", "UPGRADE"),
			"defaultHttpRetryPolicy":        applied("translate/route_retry.go"),
			"proxyListenPort":               ignored("the outbound capture port is always 15001"),
			"proxyInboundListenPort":        ignored("the inbound capture port is always 15006"),
			"proxyHttpPort":                 ignored("no HTTP proxy listener is built"),
			"hboneIdleTimeout":              ignored("ambient (HBONE) is not supported"),
			"ingressClass":                  ignored("Kubernetes Ingress is not supported"),
			"ingressService":                ignored("Kubernetes Ingress is not supported"),
			"ingressControllerMode":         ignored("Kubernetes Ingress is not supported"),
			"ingressSelector":               ignored("Kubernetes Ingress is not supported"),
			"enableEnvoyAccessLogService":   ignored("the access log service (ALS) is not supported"),
			"disableEnvoyListenerLog":       ignored("listener access logs are not configured"),
			"inboundTrafficPolicy":          ignored("inbound passthrough is always on"),
			"configSources":                 ignored("config comes from the Kubernetes API or --config-dir only"),
			"enableAutoMtls":                ignored("auto mTLS is always on (enableAutoMtls: false is not supported)"),
			"trustDomainAliases":            ignored("principals are matched in the mesh's trust domain only"),
			"caCertificates":                ignored("extra trust roots are not distributed; the root is the mesh CA's (or cacerts)"),
			"defaultServiceExportTo":        ignored("Services are exported to every namespace unless annotated"),
			"defaultVirtualServiceExportTo": ignored("VirtualServices are exported to every namespace unless exportTo says otherwise"),
			"localityLbSetting":             applied(locality),
			"zoneAwareLbSetting":            ignored("zone-aware load balancing is not supported"),
			"dnsRefreshRate":                ignored("DNS clusters keep Envoy's default refresh rate"),
			"inboundClusterStatName":        ignored("clusters keep their names as stat names"),
			"outboundClusterStatName":       ignored("clusters keep their names as stat names"),
			"certificates":                  ignored("DNS certificates from the CA are not supported"),
			"serviceSettings":               ignored("per-service settings are not supported"),
			"serviceScopeConfigs":           ignored("ambient service scopes are not supported"),
			"enablePrometheusMerge":         ignored("metrics merging is istio-agent's; mizzen's sidecars serve Envoy's /stats/prometheus on 15090"),
			"verifyCertificateAtClient":     ignored("server certificates are verified only where a DestinationRule gives a CA"),
			"ca":                            ignored("an external CA is not supported: mizzen is the CA"),
			"extensionProviders":            ignored("extension providers (ext_authz, OpenTelemetry, …) are not supported; tracing uses defaultConfig.tracing"),
			"defaultProviders":              ignored("extension providers are not supported"),
			"discoverySelectors":            ignored("discovery selection is `mizzen serve --discovery-selectors`, not the mesh config"),
			"pathNormalization":             ignored("paths get Envoy's default normalization (RFC 3986, merge slashes off)"),
			"meshMTLS":                      ignored("mTLS TLS versions and ciphers are Envoy's defaults"),
			"tlsDefaults":                   ignored("TLS versions and ciphers are Envoy's defaults"),
			"defaultTrafficPolicy":          ignored("mesh-wide traffic policy is not supported: use a DestinationRule"),
			"serviceEntryVisibility":        ignored("ServiceEntries are visible as their exportTo says"),
		},
		"mesh.v1alpha1.MeshConfig.OutboundTrafficPolicy": {
			"mode": applied(sidecar, "REGISTRY_ONLY", "ALLOW_ANY"),
			"tls":  ignored("unknown hosts are passed through as they are; TLS origination for them is not supported"),
		},
		"mesh.v1alpha1.Tracing.CustomTag":     {"literal": applied(tracing), "environment": applied(tracing), "header": applied(tracing)},
		"mesh.v1alpha1.Tracing.Literal":       {"value": applied(tracing)},
		"mesh.v1alpha1.Tracing.Environment":   {"name": applied(tracing), "defaultValue": applied(tracing)},
		"mesh.v1alpha1.Tracing.RequestHeader": {"name": applied(tracing), "defaultValue": applied(tracing)},
		"mesh.v1alpha1.ProxyConfig": {
			"discoveryAddress": applied("pkg/inject/config.go"), "concurrency": applied("pkg/inject/config.go"), "tracing": applied(tracing),
			"configPath": ignored(agentOnly), "binaryPath": ignored(agentOnly), "serviceCluster": ignored(agentOnly),
			"tracingServiceName": ignored(agentOnly), "drainDuration": ignored(agentOnly), "discoveryRefreshDelay": ignored(agentOnly),
			"zipkinAddress": ignored("use defaultConfig.tracing.zipkin.address"), "statsdUdpAddress": ignored(agentOnly),
			"envoyMetricsServiceAddress": ignored(agentOnly), "proxyAdminPort": ignored(agentOnly), "availabilityZone": ignored(agentOnly),
			"controlPlaneAuthPolicy": ignored(agentOnly), "customConfigFile": ignored(agentOnly), "statNameLength": ignored(agentOnly),
			"proxyBootstrapTemplatePath": ignored(agentOnly), "interceptionMode": ignored("capture is iptables REDIRECT"),
			"sds": ignored(agentOnly), "envoyAccessLogService": ignored(agentOnly), "envoyMetricsService": ignored(agentOnly),
			"proxyMetadata": ignored(agentOnly), "runtimeValues": ignored(agentOnly), "statusPort": ignored(agentOnly),
			"extraStatTags": ignored(agentOnly), "gatewayTopology": ignored("the number of trusted proxies (XFF) is not configured"),
			"terminationDrainDuration": ignored(agentOnly), "meshId": ignored(agentOnly), "readinessProbe": ignored(agentOnly),
			"proxyStatsMatcher": ignored(agentOnly), "holdApplicationUntilProxyStarts": ignored(agentOnly),
			"caCertificatesPem": ignored(agentOnly), "image": ignored(agentOnly), "privateKeyProvider": ignored(agentOnly),
			"proxyHeaders":      ignored("Envoy's default proxy headers (server, x-forwarded-*) are kept"),
			"fileFlushInterval": ignored(agentOnly), "fileFlushMinSizeKb": ignored(agentOnly), "statsCompression": ignored(agentOnly),
			"connectionSettings": ignored(agentOnly),
		},
		"mesh.v1alpha1.Tracing": {
			"zipkin": applied(tracing), "customTags": applied(tracing), "maxPathTagLength": applied(tracing), "sampling": applied(tracing),
			"lightstep": checked(mesh), "datadog": checked(mesh), "stackdriver": checked(mesh), "openCensusAgent": checked(mesh),
			"tlsSettings":     ignored("the Zipkin collector is reached in plaintext"),
			"enableIstioTags": ignored("Istio's span tags are always added"),
		},
		"mesh.v1alpha1.Tracing.Zipkin": {"address": applied(tracing)},
	}
}
