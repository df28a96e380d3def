package rig

// IstioStatsConfig is the bootstrap stats_config istio-agent gives every
// proxy: Envoy's default tag extraction is off and Istio's tags are used
// instead, so that /stats/prometheus carries Istio's labels —
// cluster_name="outbound|80||reviews.default.svc.cluster.local" where the
// default regex would cut the name at its first dot. Dashboards and queries
// written for Istio keep working against the rig's proxies. Only tagged
// (Prometheus) names change; /stats keeps the full names.
func IstioStatsConfig() map[string]any {
	tag := func(name, regex string) map[string]any { return map[string]any{"tag_name": name, "regex": regex} }
	const addr = `(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`
	return map[string]any{
		"use_all_default_tags": false,
		"stats_tags": []any{
			tag("cluster_name", `^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)`),
			tag("tcp_prefix", `^tcp\.((.*?)\.)\w+?$`),
			tag("response_code", `_rq(_(\d{3}))$`),
			tag("response_code_class", `_rq(_(\dxx))$`),
			tag("http_conn_manager_listener_prefix", `^listener(?=\.).*?\.http\.`+addr),
			tag("http_conn_manager_prefix", `^http\.`+addr),
			tag("listener_address", `^listener\.`+addr),
		},
	}
}
