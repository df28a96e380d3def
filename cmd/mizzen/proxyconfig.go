package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// proxyConfigOptions are the flags every proxy-config subcommand shares.
type proxyConfigOptions struct {
	mizzen  string
	admin   string
	output  string
	timeout time.Duration
}

// addMizzenFlag adds --monitoring-addr (alias --mizzen) to fs, one of cmd's
// flag sets: where mizzen's debug endpoints are, host:port or a URL.
func addMizzenFlag(cmd *cobra.Command, fs *pflag.FlagSet, dst *string) {
	fs.StringVar(dst, "monitoring-addr", "127.0.0.1:15014", "mizzen's monitoring address (host:port or URL; alias --mizzen)")
	// Global, so subcommands' merged flag sets know the alias too.
	cmd.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "mizzen" {
			name = "monitoring-addr"
		}
		return pflag.NormalizedName(name)
	})
}

func newProxyConfigCommand() *cobra.Command {
	o := &proxyConfigOptions{}
	cmd := &cobra.Command{
		Use:     "proxy-config (clusters|listeners|routes|endpoints|secret) [proxy]",
		Aliases: []string{"pc"},
		Short:   "Show a proxy's clusters, listeners, routes, endpoints or secrets, as mizzen serves them or as the proxy holds them",
		Long: "Without --admin: mizzen's view of a connected proxy (what it serves it now, from /debug/config_dump).\n" +
			"With --admin <addr>: the proxy's own config, read from its Envoy admin interface (/config_dump,\n" +
			"/clusters?format=json for endpoints). The proxy is a node ID or any part of one (pod, pod.namespace, IP).",
	}
	pf := cmd.PersistentFlags()
	addMizzenFlag(cmd, pf, &o.mizzen)
	pf.StringVar(&o.admin, "admin", "", "read the proxy's own config from this Envoy admin address (e.g. 127.0.0.1:15000) instead of mizzen's view")
	pf.StringVarP(&o.output, "output", "o", "table", "table, json or yaml (json/yaml print the raw protos)")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for mizzen or Envoy")

	var cf clusterFilter
	clusters := o.subcommand("clusters", "cluster", "Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE",
		func(out io.Writer, pc *proxyConfig) error { return printClusters(out, o.output, pc, cf) })
	clusters.Flags().StringVar(&cf.fqdn, "fqdn", "", "only clusters whose FQDN contains this")
	clusters.Flags().Uint32Var(&cf.port, "port", 0, "only clusters of this port")
	clusters.Flags().StringVar(&cf.subset, "subset", "", "only clusters of this subset")
	clusters.Flags().StringVar(&cf.direction, "direction", "", "only inbound or outbound clusters")

	var lf listenerFilter
	listeners := o.subcommand("listeners", "listener", "Listeners, one row per filter chain: ADDRESSES, PORT, MATCH, DESTINATION",
		func(out io.Writer, pc *proxyConfig) error { return printListeners(out, o.output, pc, lf) })
	listeners.Flags().Uint32Var(&lf.port, "port", 0, "only listeners on this port")
	listeners.Flags().StringVar(&lf.address, "address", "", "only listeners on this address")

	var rf routeFilter
	routes := o.subcommand("routes", "route", "Routes, one row per route: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE",
		func(out io.Writer, pc *proxyConfig) error { return printRoutes(out, o.output, pc, rf) })
	routes.Flags().StringVar(&rf.name, "name", "", "only the route configuration with this name (e.g. 9080, http.80)")

	var ef endpointFilter
	endpoints := o.subcommand("endpoints", "endpoint", "Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER",
		func(out io.Writer, pc *proxyConfig) error { return printEndpoints(out, o.output, pc, ef) })
	endpoints.Flags().StringVar(&ef.cluster, "cluster", "", "only endpoints of this cluster")
	endpoints.Flags().StringVar(&ef.address, "address", "", "only endpoints with this address")
	endpoints.Flags().Uint32Var(&ef.port, "port", 0, "only endpoints with this port")
	endpoints.Flags().StringVar(&ef.status, "status", "", "only endpoints with this status (e.g. HEALTHY)")

	secret := o.subcommand("secret", "secrets", "Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE",
		func(out io.Writer, pc *proxyConfig) error { return printSecrets(out, o.output, pc, time.Now()) })

	cmd.AddCommand(clusters, listeners, routes, endpoints, secret)
	return cmd
}

func (o *proxyConfigOptions) subcommand(name, alias, short string, print func(io.Writer, *proxyConfig) error) *cobra.Command {
	return &cobra.Command{
		Use:     name + " [proxy]",
		Aliases: []string{alias},
		Short:   short,
		Args:    cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
			defer cancel()
			return proxyIDs(ctx, o.mizzen), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch o.output {
			case "table", "", "json", "yaml":
			default:
				return fmt.Errorf("-o %s: want table, json or yaml", o.output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			pc, err := o.load(ctx, args, name == "endpoints")
			if err != nil {
				return err
			}
			return print(cmd.OutOrStdout(), pc)
		},
	}
}

// load reads the proxy's config from its admin (--admin) or mizzen's view.
func (o *proxyConfigOptions) load(ctx context.Context, args []string, hosts bool) (*proxyConfig, error) {
	if o.admin != "" {
		return loadEnvoyAdmin(ctx, o.admin, hosts)
	}
	if len(args) == 0 {
		return nil, errors.New("name a proxy (see mizzen proxy-status), or give --admin <envoy admin address>")
	}
	id, err := resolveProxy(ctx, o.mizzen, args[0])
	if err != nil {
		return nil, err
	}
	return loadMizzenView(ctx, o.mizzen, id)
}

// printRaw writes protos as -o json or yaml asks.
func printRaw[T proto.Message](out io.Writer, format string, msgs []T) error {
	b, err := protoJSON(msgs)
	if err != nil {
		return err
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
	}
	_, err = out.Write(b)
	return err
}

func newTable(out io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

func row(tw io.Writer, cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }

// istioConfig reads the Istio object a resource came from, as istiod and
// mizzen record it in metadata.filter_metadata.istio.config
// (/apis/networking.istio.io/v1/namespaces/<ns>/<kind>/<name>), and shows it
// as istioctl does: <name>.<ns>; "-" when there is none.
func istioConfig(md *corev3.Metadata) string {
	path := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 7 || parts[3] != "namespaces" {
		return "-"
	}
	return parts[6] + "." + parts[4]
}

// ---- clusters

type clusterFilter struct {
	fqdn, subset, direction string
	port                    uint32
}

type clusterRow struct {
	fqdn, port, subset, direction, typ, dr string
	portNum                                int
}

// parseClusterName splits Istio's `<direction>|<port>|<subset>|<fqdn>`;
// anything else (BlackHoleCluster, a bootstrap cluster) is shown by name.
func parseClusterName(name string) clusterRow {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 {
		return clusterRow{fqdn: name, port: "-", subset: "-", direction: "-"}
	}
	r := clusterRow{direction: parts[0], port: parts[1], subset: parts[2], fqdn: parts[3]}
	r.portNum, _ = strconv.Atoi(parts[1])
	if r.subset == "" {
		r.subset = "-"
	}
	return r
}

func clusterType(c *clusterv3.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

func (f clusterFilter) keep(r clusterRow) bool {
	return (f.fqdn == "" || strings.Contains(r.fqdn, f.fqdn)) &&
		(f.port == 0 || r.port == strconv.Itoa(int(f.port))) &&
		(f.subset == "" || r.subset == f.subset) &&
		(f.direction == "" || r.direction == f.direction)
}

func printClusters(out io.Writer, format string, pc *proxyConfig, f clusterFilter) error {
	var rows []clusterRow
	var msgs []*clusterv3.Cluster
	for _, e := range pc.clusters {
		r := parseClusterName(e.msg.GetName())
		r.typ = clusterType(e.msg)
		r.dr = istioConfig(e.msg.GetMetadata())
		if !f.keep(r) {
			continue
		}
		rows = append(rows, r)
		msgs = append(msgs, e.msg)
	}
	if format == "json" || format == "yaml" {
		return printRaw(out, format, msgs)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.fqdn != b.fqdn {
			return a.fqdn < b.fqdn
		}
		if a.portNum != b.portNum {
			return a.portNum < b.portNum
		}
		if a.subset != b.subset {
			return a.subset < b.subset
		}
		return a.direction < b.direction
	})
	tw := newTable(out, "SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE")
	for _, r := range rows {
		row(tw, r.fqdn, r.port, r.subset, r.direction, r.typ, r.dr)
	}
	return tw.Flush()
}

// ---- listeners

type listenerFilter struct {
	address string
	port    uint32
}

type listenerRow struct {
	addresses, match, destination string
	port                          uint32
}

func listenerAddresses(l *listenerv3.Listener) (string, uint32) {
	sa := l.GetAddress().GetSocketAddress()
	addrs := []string{sa.GetAddress()}
	for _, a := range l.GetAdditionalAddresses() {
		addrs = append(addrs, a.GetAddress().GetSocketAddress().GetAddress())
	}
	return strings.Join(addrs, ","), sa.GetPortValue()
}

// describeMatch renders a filter chain match as istioctl does.
func describeMatch(m *listenerv3.FilterChainMatch) string {
	var conds []string
	if rs := m.GetPrefixRanges(); len(rs) > 0 {
		conds = append(conds, "Addr: "+cidrs(rs))
	}
	if p := m.GetDestinationPort().GetValue(); p != 0 {
		conds = append(conds, fmt.Sprintf("Port: %d", p))
	}
	if rs := m.GetSourcePrefixRanges(); len(rs) > 0 {
		conds = append(conds, "SrcAddr: "+cidrs(rs))
	}
	if len(m.GetServerNames()) > 0 {
		conds = append(conds, "SNI: "+strings.Join(m.GetServerNames(), ","))
	}
	if tp := m.GetTransportProtocol(); tp != "" {
		conds = append(conds, "Trans: "+tp)
	}
	if len(m.GetApplicationProtocols()) > 0 {
		conds = append(conds, "App: "+strings.Join(m.GetApplicationProtocols(), ","))
	}
	if len(conds) == 0 {
		return "ALL"
	}
	return strings.Join(conds, "; ")
}

func cidrs(rs []*corev3.CidrRange) string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s/%d", r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
	}
	return strings.Join(out, ",")
}

// describeDestination says where a filter chain sends traffic: the route
// table of its HTTP connection manager, or the cluster of its TCP proxy.
func describeDestination(fc *listenerv3.FilterChain) string {
	for _, f := range fc.GetFilters() {
		switch tc := f.GetTypedConfig(); {
		case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
			hcm := &hcmv3.HttpConnectionManager{}
			if tc.UnmarshalTo(hcm) != nil {
				continue
			}
			if rds := hcm.GetRds(); rds != nil {
				return "Route: " + rds.GetRouteConfigName()
			}
			var paths []string
			for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
				for _, r := range vh.GetRoutes() {
					paths = append(paths, describeRouteMatch(r.GetMatch()))
				}
			}
			return "Inline Route: " + strings.Join(paths, "; ")
		case tc.MessageIs(&tcpproxyv3.TcpProxy{}):
			tp := &tcpproxyv3.TcpProxy{}
			if tc.UnmarshalTo(tp) != nil {
				continue
			}
			if c := tp.GetCluster(); c != "" {
				return "Cluster: " + c
			}
			var ws []string
			for _, w := range tp.GetWeightedClusters().GetClusters() {
				ws = append(ws, fmt.Sprintf("%s %d", w.GetName(), w.GetWeight()))
			}
			return "WeightedClusters: " + strings.Join(ws, ", ")
		}
	}
	return "Non-HTTP/Non-TCP"
}

func printListeners(out io.Writer, format string, pc *proxyConfig, f listenerFilter) error {
	var rows []listenerRow
	var msgs []*listenerv3.Listener
	for _, e := range pc.listeners {
		addr, port := listenerAddresses(e.msg)
		if (f.port != 0 && port != f.port) || (f.address != "" && !strings.Contains(","+addr+",", ","+f.address+",")) {
			continue
		}
		msgs = append(msgs, e.msg)
		for _, fc := range e.msg.GetFilterChains() {
			rows = append(rows, listenerRow{addr, describeMatch(fc.GetFilterChainMatch()), describeDestination(fc), port})
		}
		if fc := e.msg.GetDefaultFilterChain(); fc != nil {
			rows = append(rows, listenerRow{addr, "ALL", describeDestination(fc), port})
		}
		if len(e.msg.GetFilterChains()) == 0 && e.msg.GetDefaultFilterChain() == nil {
			rows = append(rows, listenerRow{addr, "ALL", "-", port})
		}
	}
	if format == "json" || format == "yaml" {
		return printRaw(out, format, msgs)
	}
	// Listeners by port, then address; a listener's chains stay in Envoy's order.
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].port != rows[j].port {
			return rows[i].port < rows[j].port
		}
		return rows[i].addresses < rows[j].addresses
	})
	tw := newTable(out, "ADDRESSES", "PORT", "MATCH", "DESTINATION")
	for _, r := range rows {
		row(tw, r.addresses, strconv.Itoa(int(r.port)), r.match, r.destination)
	}
	return tw.Flush()
}

// ---- routes

type routeFilter struct{ name string }

// describeRouteMatch renders a route's match as istioctl does: /x* for a
// prefix, the path for an exact path, the regex for a regex; headers follow.
func describeRouteMatch(m *routev3.RouteMatch) string {
	var s string
	switch {
	case m.GetPrefix() != "" || m.GetPathSpecifier() == nil:
		s = m.GetPrefix() + "*"
		if m.GetPrefix() == "" {
			s = "/*"
		}
	case m.GetPath() != "":
		s = m.GetPath()
	case m.GetSafeRegex() != nil:
		s = m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		s = m.GetPathSeparatedPrefix() + "/*"
	default:
		s = "/*"
	}
	var hs []string
	for _, h := range m.GetHeaders() {
		v := h.GetStringMatch().GetExact()
		if v == "" {
			v = h.GetStringMatch().GetPrefix()
			if v != "" {
				v += "*"
			}
		}
		if v == "" && h.GetStringMatch().GetSafeRegex() != nil {
			v = "regex " + h.GetStringMatch().GetSafeRegex().GetRegex()
		}
		if h.GetPresentMatch() {
			v = "present"
		}
		if h.GetInvertMatch() || h.GetStringMatch().GetIgnoreCase() {
			v += " (inverted or case-insensitive)"
		}
		hs = append(hs, h.GetName()+"="+v)
	}
	if len(hs) > 0 {
		s += " (" + strings.Join(hs, ", ") + ")"
	}
	return s
}

// describeDomains shortens a virtual host's domains: the shortest two names
// without a port (names before IPs), then how many more there are.
func describeDomains(ds []string) string {
	seen := map[string]bool{}
	var short []string
	for _, d := range ds {
		if h, _, err := net.SplitHostPort(d); err == nil && !strings.HasPrefix(d, "[") {
			d = h
		}
		if !seen[d] {
			seen[d] = true
			short = append(short, d)
		}
	}
	sort.SliceStable(short, func(i, j int) bool {
		ipi, ipj := net.ParseIP(short[i]) != nil, net.ParseIP(short[j]) != nil
		if ipi != ipj {
			return ipj
		}
		return len(short[i]) < len(short[j])
	})
	if len(short) <= 2 {
		return strings.Join(short, ", ")
	}
	return fmt.Sprintf("%s + %d more...", strings.Join(short[:2], ", "), len(short)-2)
}

func printRoutes(out io.Writer, format string, pc *proxyConfig, f routeFilter) error {
	var msgs []*routev3.RouteConfiguration
	for _, e := range pc.routes {
		if f.name == "" || e.msg.GetName() == f.name {
			msgs = append(msgs, e.msg)
		}
	}
	if format == "json" || format == "yaml" {
		return printRaw(out, format, msgs)
	}
	tw := newTable(out, "NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE")
	for _, rc := range msgs {
		for _, vh := range rc.GetVirtualHosts() {
			domains := describeDomains(vh.GetDomains())
			if len(vh.GetRoutes()) == 0 {
				row(tw, rc.GetName(), vh.GetName(), domains, "-", "-")
			}
			for _, r := range vh.GetRoutes() {
				row(tw, rc.GetName(), vh.GetName(), domains, describeRouteMatch(r.GetMatch()), istioConfig(r.GetMetadata()))
			}
		}
	}
	return tw.Flush()
}

// ---- endpoints

type endpointFilter struct {
	cluster, address, status string
	port                     uint32
}

type endpointRow struct {
	endpoint, status, outlier, cluster string
	address                            string
	port                               uint32
}

func (f endpointFilter) keep(r endpointRow) bool {
	return (f.cluster == "" || r.cluster == f.cluster) && (f.address == "" || r.address == f.address) &&
		(f.port == 0 || r.port == f.port) && (f.status == "" || strings.EqualFold(r.status, f.status))
}

func socketAddress(a *corev3.Address) (string, uint32, string) {
	if p := a.GetPipe(); p != nil {
		return p.GetPath(), 0, "unix://" + p.GetPath()
	}
	sa := a.GetSocketAddress()
	return sa.GetAddress(), sa.GetPortValue(), net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
}

// healthStatus shows EDS health as Envoy applies it: UNKNOWN counts as healthy.
func healthStatus(s corev3.HealthStatus) string {
	if s == corev3.HealthStatus_UNKNOWN {
		return corev3.HealthStatus_HEALTHY.String()
	}
	return s.String()
}

func printEndpoints(out io.Writer, format string, pc *proxyConfig, f endpointFilter) error {
	var rows []endpointRow
	if pc.hosts != nil {
		// The proxy's admin: its endpoints as it uses them, with the outlier
		// detector's verdict.
		var kept []*adminv3.ClusterStatus
		for _, cs := range pc.hosts.GetClusterStatuses() {
			n := len(rows)
			for _, hs := range cs.GetHostStatuses() {
				addr, port, ep := socketAddress(hs.GetAddress())
				status := healthStatus(hs.GetHealthStatus().GetEdsHealthStatus())
				if hs.GetHealthStatus().GetFailedActiveHealthCheck() {
					status = "UNHEALTHY"
				}
				outlier := "OK"
				if hs.GetHealthStatus().GetFailedOutlierCheck() {
					outlier = "FAILED"
				}
				r := endpointRow{ep, status, outlier, cs.GetName(), addr, port}
				if f.keep(r) {
					rows = append(rows, r)
				}
			}
			if len(rows) > n || (f == endpointFilter{}) {
				kept = append(kept, cs)
			}
		}
		if format == "json" || format == "yaml" {
			return printRaw(out, format, kept)
		}
	} else {
		// mizzen's view: what it sends; whether an endpoint failed an outlier
		// check only the proxy knows.
		var kept []*endpointv3.ClusterLoadAssignment
		for _, e := range pc.endpoints {
			n := len(rows)
			for _, loc := range e.msg.GetEndpoints() {
				for _, lb := range loc.GetLbEndpoints() {
					addr, port, ep := socketAddress(lb.GetEndpoint().GetAddress())
					r := endpointRow{ep, healthStatus(lb.GetHealthStatus()), "-", e.msg.GetClusterName(), addr, port}
					if f.keep(r) {
						rows = append(rows, r)
					}
				}
			}
			if len(rows) > n || (f.cluster == "" && f.address == "" && f.port == 0 && f.status == "") {
				kept = append(kept, e.msg)
			}
		}
		if format == "json" || format == "yaml" {
			return printRaw(out, format, kept)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].cluster != rows[j].cluster {
			return rows[i].cluster < rows[j].cluster
		}
		return rows[i].endpoint < rows[j].endpoint
	})
	tw := newTable(out, "ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER")
	for _, r := range rows {
		row(tw, r.endpoint, r.status, r.outlier, r.cluster)
	}
	return tw.Flush()
}

// ---- secrets

type secretRow struct {
	name, typ, status, valid, serial, notAfter, notBefore string
}

func printSecrets(out io.Writer, format string, pc *proxyConfig, now time.Time) error {
	var msgs []*tlsv3.Secret
	var rows []secretRow
	for _, e := range pc.secrets {
		msgs = append(msgs, e.msg)
		s := e.msg
		var typ string
		var pemBytes []byte
		switch {
		case s.GetTlsCertificate() != nil:
			typ, pemBytes = "Cert Chain", s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
			if pemBytes == nil {
				pemBytes = []byte(s.GetTlsCertificate().GetCertificateChain().GetInlineString())
			}
		case s.GetValidationContext() != nil:
			typ, pemBytes = "CA", s.GetValidationContext().GetTrustedCa().GetInlineBytes()
			if pemBytes == nil {
				pemBytes = []byte(s.GetValidationContext().GetTrustedCa().GetInlineString())
			}
		default:
			typ = "Other"
		}
		r := secretRow{name: s.GetName(), typ: typ, status: e.state, valid: "-", serial: "-", notAfter: "-", notBefore: "-"}
		if block, _ := pem.Decode(pemBytes); block != nil {
			if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
				r.valid = strconv.FormatBool(!now.Before(cert.NotBefore) && !now.After(cert.NotAfter))
				r.serial = cert.SerialNumber.Text(16)
				r.notAfter = cert.NotAfter.UTC().Format(time.RFC3339)
				r.notBefore = cert.NotBefore.UTC().Format(time.RFC3339)
			}
		}
		rows = append(rows, r)
	}
	if format == "json" || format == "yaml" {
		return printRaw(out, format, msgs)
	}
	tw := newTable(out, "RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE")
	for _, r := range rows {
		row(tw, r.name, r.typ, r.status, r.valid, r.serial, r.notAfter, r.notBefore)
	}
	return tw.Flush()
}
