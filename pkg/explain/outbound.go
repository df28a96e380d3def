package explain

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// Trace is the walk of one request, step by step.
type Trace struct {
	Steps []Step `json:"steps"`
	// What the walk found, for callers that check it (tests, scripts).
	Listener    string `json:"listener,omitempty"`
	RouteTable  string `json:"route_table,omitempty"`
	VirtualHost string `json:"virtual_host,omitempty"`
	Route       string `json:"route,omitempty"`
	// Branch is the branch of a sniffed port the connection took: "HTTP" or
	// "TCP" (empty when the port's protocol is declared).
	Branch         string        `json:"sniffed_branch,omitempty"`
	VirtualService string        `json:"virtual_service,omitempty"`
	Destinations   []Destination `json:"destinations,omitempty"`
	// Verdict of the destination side: ALLOWED or DENIED (MIXED when the
	// destinations disagree), and by which policy; per destination in Verdicts.
	Decision string    `json:"decision,omitempty"`
	Policy   string    `json:"policy,omitempty"`
	Verdicts []Verdict `json:"verdicts,omitempty"`
}

// Step is one stage of the walk.
type Step struct {
	Stage  string   `json:"stage"`
	Result string   `json:"result"`
	Why    []string `json:"why,omitempty"`
}

// Destination is a cluster the route may send to.
type Destination struct {
	Cluster   string     `json:"cluster"`
	Weight    uint32     `json:"weight,omitempty"` // of TotalWeight
	Total     uint32     `json:"total_weight,omitempty"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	MTLS      string     `json:"mtls,omitempty"` // how the client side secures the connection
}

// Endpoint is one upstream address.
type Endpoint struct {
	Address string `json:"address"`
	TLSMode string `json:"tls_mode,omitempty"`
}

func (t *Trace) add(stage, result string, why ...string) {
	t.Steps = append(t.Steps, Step{Stage: stage, Result: result, Why: why})
}

// Outbound walks the calling proxy's config for r.
func Outbound(cfg *Config, r *Request) *Trace {
	t := &Trace{}
	port := r.Port()
	l, why := pickOutboundListener(cfg, r.DestIP, port)
	if l == nil {
		t.add("listener", "none", why...)
		return t
	}
	t.Listener = l.GetName()
	t.add("listener", l.GetName(), why...)
	var alpn []string
	if sniffs(l) {
		if p := r.DetectedProtocol(); p != "" {
			alpn = []string{p}
			t.add("protocol sniffing", "HTTP ("+p+"): the port is sniffed, the http_inspector recognises the request",
				"the HTTP branch: the port's route table, so VirtualService http rules apply")
		} else {
			t.add("protocol sniffing", "not HTTP: the port is sniffed and the first bytes are no HTTP request (or the client sends nothing until the detection timeout)",
				"the TCP branch: no HTTP routing")
		}
	}
	fc, fcWhy := pickChain(l, r.DestIP, port, "raw_buffer", alpn)
	if fc == nil {
		t.add("filter chain", "none: the connection is closed", fcWhy...)
		return t
	}
	t.add("filter chain", chainName(fc), fcWhy...)
	if sniffs(l) {
		t.Branch = "TCP"
		if len(fc.GetFilterChainMatch().GetApplicationProtocols()) > 0 {
			t.Branch = "HTTP"
		}
	}
	for _, f := range fc.GetFilters() {
		if hcm := typed(f.GetTypedConfig(), &hcmv3.HttpConnectionManager{}); hcm != nil {
			rc := hcm.GetRouteConfig()
			if rc == nil {
				name := hcm.GetRds().GetRouteConfigName()
				rc = cfg.Routes[name]
				if rc == nil {
					t.add("route table", name+" (not in the config: Envoy would wait for it, then 404)")
					return t
				}
			}
			t.RouteTable = rc.GetName()
			walkRoutes(cfg, t, rc, r)
			return t
		}
		if tcp := typed(f.GetTypedConfig(), &tcpv3.TcpProxy{}); tcp != nil {
			t.add("tcp proxy", "L4: no HTTP routing on this port")
			if c := tcp.GetCluster(); c != "" {
				t.Destinations = append(t.Destinations, destination(cfg, c, 0, 0))
			}
			for _, wc := range tcp.GetWeightedClusters().GetClusters() {
				t.Destinations = append(t.Destinations, destination(cfg, wc.GetName(), wc.GetWeight(), 0))
			}
			describeDestinations(t)
			return t
		}
	}
	t.add("filters", "no HTTP connection manager or TCP proxy in the chain")
	return t
}

// pickOutboundListener: Envoy's virtualOutbound hands the connection to the
// listener for the original destination: an exact <ip>_<port> one first,
// else 0.0.0.0_<port>, else virtualOutbound keeps it (passthrough).
func pickOutboundListener(cfg *Config, ip string, port int) (*listenerv3.Listener, []string) {
	var wildcard, virtual *listenerv3.Listener
	for _, l := range cfg.Listeners {
		if l.GetTrafficDirection().String() == "INBOUND" || strings.HasPrefix(l.GetName(), "virtualInbound") {
			continue
		}
		sa := l.GetAddress().GetSocketAddress()
		if int(sa.GetPortValue()) == port {
			if ip != "" && sa.GetAddress() == ip {
				return l, []string{fmt.Sprintf("listener for exactly %s:%d", ip, port)}
			}
			if sa.GetAddress() == "0.0.0.0" || sa.GetAddress() == "::" {
				wildcard = l
			}
		}
		if l.GetUseOriginalDst().GetValue() {
			virtual = l
		}
	}
	if wildcard != nil {
		why := fmt.Sprintf("no listener for %s:%d; the wildcard listener of port %d takes it", ipOr(ip), port, port)
		if ip == "" {
			why = fmt.Sprintf("port %d: the wildcard listener of the port", port)
		}
		return wildcard, []string{why}
	}
	if virtual != nil {
		return virtual, []string{fmt.Sprintf("no listener for port %d: virtualOutbound keeps the connection", port)}
	}
	return nil, []string{fmt.Sprintf("no listener for port %d and no virtualOutbound", port)}
}

func ipOr(ip string) string {
	if ip == "" {
		return "the destination"
	}
	return ip
}

// sniffs reports whether the listener runs the http_inspector: the port's
// protocol is detected per connection.
func sniffs(l *listenerv3.Listener) bool {
	for _, f := range l.GetListenerFilters() {
		if f.GetName() == "envoy.filters.listener.http_inspector" {
			return true
		}
	}
	return false
}

// pickChain is filter chain matching, on what explain knows about the
// connection: destination IP and port, transport protocol, application
// protocols (what the http_inspector detected, or the client's TLS ALPNs).
func pickChain(l *listenerv3.Listener, ip string, port int, transport string, alpn []string) (*listenerv3.FilterChain, []string) {
	var why []string
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if m.GetDestinationPort() != nil && int(m.GetDestinationPort().GetValue()) != port {
			continue
		}
		if tp := m.GetTransportProtocol(); tp != "" && tp != transport {
			why = append(why, fmt.Sprintf("chain %s wants transport %q, the connection is %q", chainName(fc), tp, transport))
			continue
		}
		if want := m.GetApplicationProtocols(); len(want) > 0 && !anyIn(alpn, want) {
			why = append(why, fmt.Sprintf("chain %s wants application protocol %s, the connection has %s", chainName(fc), strings.Join(want, "|"), orNone(alpn)))
			continue
		}
		if len(m.GetPrefixRanges()) > 0 {
			in := false
			for _, pr := range m.GetPrefixRanges() {
				if ip != "" && cidrContains(pr.GetAddressPrefix(), pr.GetPrefixLen().GetValue(), ip) {
					in = true
				}
			}
			if !in {
				continue
			}
		}
		why = append(why, fmt.Sprintf("chain %s matches port %d, transport %s", chainName(fc), port, transport))
		return fc, why
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		return d, append(why, "no chain matches: the listener's default chain")
	}
	return nil, append(why, "no chain matches and there is no default chain")
}

func chainName(fc *listenerv3.FilterChain) string {
	if fc.GetName() != "" {
		return fc.GetName()
	}
	return "(unnamed)"
}

func walkRoutes(cfg *Config, t *Trace, rc *routev3.RouteConfiguration, r *Request) {
	host := r.Authority()
	if rc.GetIgnorePortInHostMatching() {
		host = hostWithoutPort(host)
	}
	var best *routev3.VirtualHost
	bestScore, bestDomain := 99, ""
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			if s := domainMatch(d, host); s >= 0 && s < bestScore {
				best, bestScore, bestDomain = vh, s, d
			}
		}
	}
	if best == nil {
		t.add("virtual host", "none: Envoy answers 404", fmt.Sprintf("no domain of route table %q matches host %q", rc.GetName(), host))
		return
	}
	t.VirtualHost = best.GetName()
	t.add("virtual host", best.GetName(), fmt.Sprintf("route table %q: domain %q matches host %q", rc.GetName(), bestDomain, host))
	for i, rt := range best.GetRoutes() {
		ok, reasons := routeMatch(rt.GetMatch(), r)
		label := fmt.Sprintf("route #%d %q%s", i+1, rt.GetName(), origin(rt))
		if !ok {
			t.add("route", label+": no match", reasons...)
			continue
		}
		t.Route = rt.GetName()
		t.VirtualService = istioConfig(rt)
		t.add("route", label+": MATCH", reasons...)
		switch a := rt.GetAction().(type) {
		case *routev3.Route_Route:
			ra := a.Route
			if c := ra.GetCluster(); c != "" {
				t.Destinations = append(t.Destinations, destination(cfg, c, 0, 0))
			}
			if wc := ra.GetWeightedClusters(); wc != nil {
				total := uint32(0)
				for _, c := range wc.GetClusters() {
					total += c.GetWeight().GetValue()
				}
				for _, c := range wc.GetClusters() {
					t.Destinations = append(t.Destinations, destination(cfg, c.GetName(), c.GetWeight().GetValue(), total))
				}
			}
			describeAction(t, ra)
			describeDestinations(t)
		case *routev3.Route_Redirect:
			t.add("action", "redirect", fmt.Sprintf("%v", a.Redirect))
		case *routev3.Route_DirectResponse:
			t.add("action", fmt.Sprintf("direct response %d", a.DirectResponse.GetStatus()))
		default:
			t.add("action", "unsupported route action")
		}
		return
	}
	t.add("route", "none matched: Envoy answers 404")
}

func describeAction(t *Trace, ra *routev3.RouteAction) {
	var why []string
	if d := ra.GetTimeout(); d != nil && d.AsDuration() > 0 {
		why = append(why, "timeout "+d.AsDuration().String())
	}
	if rp := ra.GetRetryPolicy(); rp != nil && rp.GetNumRetries() != nil {
		why = append(why, fmt.Sprintf("retries %d on %s", rp.GetNumRetries().GetValue(), rp.GetRetryOn()))
	}
	if p := ra.GetPrefixRewrite(); p != "" {
		why = append(why, "rewrite prefix to "+strconv.Quote(p))
	}
	if len(why) > 0 {
		t.add("route action", strings.Join(why, "; "))
	}
}

func describeDestinations(t *Trace) {
	for _, d := range t.Destinations {
		res := d.Cluster
		if d.Total > 0 {
			res = fmt.Sprintf("%s: weight %d of %d (%.1f%%)", d.Cluster, d.Weight, d.Total, 100*float64(d.Weight)/float64(d.Total))
		}
		var why []string
		if d.MTLS != "" {
			why = append(why, d.MTLS)
		}
		if len(d.Endpoints) == 0 {
			why = append(why, "no endpoints: Envoy answers 503 (no healthy upstream)")
		}
		for _, e := range d.Endpoints {
			s := "endpoint " + e.Address
			if e.TLSMode != "" {
				s += " (tlsMode " + e.TLSMode + ")"
			}
			why = append(why, s)
		}
		t.add("destination", res, why...)
	}
}

func destination(cfg *Config, name string, weight, total uint32) Destination {
	d := Destination{Cluster: name, Weight: weight, Total: total}
	c := cfg.Clusters[name]
	if c == nil {
		d.MTLS = "cluster not in the config (Envoy answers 503)"
		return d
	}
	d.MTLS = clusterTLS(c)
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		d.Endpoints = []Endpoint{{Address: "the original destination (passthrough)"}}
		return d
	}
	cla := cfg.Endpoints[name]
	if cla == nil {
		cla = c.GetLoadAssignment()
	}
	for _, lle := range cla.GetEndpoints() {
		for _, le := range lle.GetLbEndpoints() {
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			e := Endpoint{Address: fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())}
			if m := le.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]; m != nil {
				e.TLSMode = m.GetFields()["tlsMode"].GetStringValue()
			}
			d.Endpoints = append(d.Endpoints, e)
		}
	}
	sort.Slice(d.Endpoints, func(i, j int) bool { return d.Endpoints[i].Address < d.Endpoints[j].Address })
	return d
}

// clusterTLS says how the client side secures connections of a cluster.
func clusterTLS(c *clusterv3.Cluster) string {
	if len(c.GetTransportSocketMatches()) > 0 {
		var parts []string
		for _, m := range c.GetTransportSocketMatches() {
			parts = append(parts, fmt.Sprintf("%s when endpoint metadata %v", m.GetTransportSocket().GetName(), m.GetMatch().AsMap()))
		}
		return "auto mTLS: " + strings.Join(parts, "; ")
	}
	if ts := c.GetTransportSocket(); ts != nil && ts.GetName() != "" && !strings.Contains(ts.GetName(), "raw_buffer") {
		return "TLS (" + ts.GetName() + ")"
	}
	return "plaintext"
}

func origin(rt *routev3.Route) string {
	if c := istioConfig(rt); c != "" {
		return " from VirtualService " + c
	}
	return " (default route)"
}

// istioConfig reads Istio's origin metadata: namespace/name of the VirtualService.
func istioConfig(rt *routev3.Route) string {
	path := rt.GetMetadata().GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	// /apis/networking.istio.io/v1/namespaces/<ns>/virtual-service/<name>
	parts := strings.Split(path, "/")
	if len(parts) >= 8 {
		return parts[5] + "/" + parts[7]
	}
	return path
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

// hostWithoutPort is Host as a table with ignore_port_in_host_matching sees
// it: without ":port" (an IPv6 address keeps its brackets).
func hostWithoutPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.LastIndex(host, "]:"); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if strings.Count(host, ":") == 1 {
		return host[:strings.IndexByte(host, ':')]
	}
	return host
}

// ResolveVIP stands in for the app's DNS lookup: a Service's virtual host
// lists its ClusterIP (IPv6 in brackets) among its domains. "" when no
// virtual host names host.
func ResolveVIP(cfg *Config, host string) string {
	for _, rc := range cfg.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			if !slices.Contains(vh.GetDomains(), host) {
				continue
			}
			for _, d := range vh.GetDomains() {
				if ip := net.ParseIP(strings.Trim(d, "[]")); ip != nil {
					return ip.String()
				}
			}
		}
	}
	return ""
}
