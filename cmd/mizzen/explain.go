package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/pkg/explain"
	"github.com/mizzenmesh/mizzen/xds"
)

func newExplainCommand() *cobra.Command {
	var (
		from, addr, method, output string
		headers                    []string
	)
	cmd := &cobra.Command{
		Use:   "explain --from <proxy|pod.namespace> <url>",
		Short: "Walk a request through the computed config and say why it goes where it goes",
		Long: "explain takes the config mizzen pushed to the calling proxy and walks a request through it as Envoy\n" +
			"would: listener, filter chain, virtual host, every route tried (which VirtualService, which condition\n" +
			"failed), the weighted destinations, clusters (mTLS or not) and endpoints; then, on each destination\n" +
			"workload's own sidecar, the inbound chain (PeerAuthentication mode) and the RBAC filters\n" +
			"(AuthorizationPolicy rules), naming the policy that allows or denies.",
		Example: "  mizzen explain --from client.default http://reviews:9080/reviews/1 -H 'end-user: jason'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			hs := map[string]string{}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok {
					return fmt.Errorf("-H %q: want name: value", h)
				}
				hs[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
			req, err := explain.NewRequest(method, args[0], hs)
			if err != nil {
				return err
			}
			trace, err := runExplain(ctx, addr, from, req)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(trace)
			}
			printTrace(cmd.OutOrStdout(), trace)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "calling proxy: node ID, pod.namespace or pod name (see proxy-status)")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'name: value' (repeatable)")
	f.StringVarP(&method, "request", "X", "GET", "HTTP method")
	f.StringVar(&addr, "monitoring-addr", "127.0.0.1:15014", "mizzen's monitoring address")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func runExplain(ctx context.Context, addr, from string, req *explain.Request) (*explain.Trace, error) {
	proxies, err := fetchSyncz(ctx, addr)
	if err != nil {
		return nil, err
	}
	src, err := findProxy(proxies, from)
	if err != nil {
		return nil, err
	}
	cfg, err := fetchDump(ctx, addr, src.ProxyID)
	if err != nil {
		return nil, err
	}
	if req.DestIP == "" {
		req.DestIP = explain.ResolveVIP(cfg, req.URL.Hostname())
	}
	trace := explain.Outbound(cfg, req)
	// The destination side: each destination's first endpoint whose sidecar
	// is connected to mizzen.
	seen := map[string]bool{}
	for _, d := range trace.Destinations {
		for _, e := range d.Endpoints {
			host, portS, err := net.SplitHostPort(e.Address)
			if err != nil || seen[host] {
				continue
			}
			dst := proxyAt(proxies, host)
			if dst == nil {
				continue
			}
			seen[host] = true
			dcfg, err := fetchDump(ctx, addr, dst.ProxyID)
			if err != nil {
				return nil, err
			}
			var port int
			fmt.Sscan(portS, &port)
			// Auto mTLS: the client sends TLS when the cluster's socket
			// matches the endpoint's tlsMode and the client has an identity.
			mtls := e.TLSMode == "istio" && strings.HasPrefix(d.MTLS, "auto mTLS") || strings.HasPrefix(d.MTLS, "TLS")
			in := *req
			in.DestIP = host
			if mtls {
				in.SourcePrincipal = explain.PeerPrincipal(src.Identity)
			}
			in.SourceIP = proxyIP(src.ProxyID)
			explain.Inbound(dcfg, trace, &in, port, mtls)
			break
		}
	}
	return trace, nil
}

func findProxy(proxies []xds.ProxySyncStatus, from string) (*xds.ProxySyncStatus, error) {
	var matches []*xds.ProxySyncStatus
	for i := range proxies {
		p := &proxies[i]
		parts := strings.Split(p.ProxyID, "~")
		pod := ""
		if len(parts) == 4 {
			pod = parts[2]
		}
		if p.ProxyID == from || pod == from || strings.TrimSuffix(pod, "."+p.Namespace) == from {
			matches = append(matches, p)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("no connected proxy %q (see mizzen proxy-status)", from)
	}
	return nil, fmt.Errorf("%q names %d proxies; use pod.namespace or the node ID", from, len(matches))
}

func proxyAt(proxies []xds.ProxySyncStatus, ip string) *xds.ProxySyncStatus {
	for i := range proxies {
		if proxyIP(proxies[i].ProxyID) == ip && proxies[i].Type == "sidecar" {
			return &proxies[i]
		}
	}
	return nil
}

func proxyIP(id string) string {
	parts := strings.Split(id, "~")
	if len(parts) == 4 {
		return parts[1]
	}
	return ""
}

// fetchDump reads mizzen's view of a proxy (the same reader proxy-config
// uses) into explain's form.
func fetchDump(ctx context.Context, addr, proxyID string) (*explain.Config, error) {
	pc, err := loadMizzenView(ctx, addr, proxyID)
	if err != nil {
		return nil, err
	}
	cfg := &explain.Config{ProxyID: proxyID, Routes: map[string]*routev3.RouteConfiguration{},
		Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}}
	for _, e := range pc.listeners {
		cfg.Listeners = append(cfg.Listeners, e.msg)
	}
	for _, e := range pc.routes {
		cfg.Routes[e.msg.GetName()] = e.msg
	}
	for _, e := range pc.clusters {
		cfg.Clusters[e.msg.GetName()] = e.msg
	}
	for _, e := range pc.endpoints {
		cfg.Endpoints[e.msg.GetClusterName()] = e.msg
	}
	return cfg, nil
}

func printTrace(w io.Writer, t *explain.Trace) {
	for _, s := range t.Steps {
		fmt.Fprintf(w, "%-18s %s\n", s.Stage+":", s.Result)
		for _, why := range s.Why {
			fmt.Fprintf(w, "%-18s   %s\n", "", why)
		}
	}
	if t.Decision != "" {
		res := t.Decision
		if t.Policy != "" {
			res += " (" + t.Policy + ")"
		}
		fmt.Fprintf(w, "%-18s %s\n", "verdict:", res)
		if t.Decision == "MIXED" {
			for _, v := range t.Verdicts {
				fmt.Fprintf(w, "%-18s   %s at %s (%s)\n", "", v.Decision, v.Proxy, v.Policy)
			}
		}
	}
}
