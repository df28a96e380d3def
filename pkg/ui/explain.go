package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/structpb" // the opaque form of unknown typed configs

	"github.com/mizzenmesh/mizzen/pkg/explain"
)

// syncRow is the part of a /debug/syncz row explain needs.
type syncRow struct {
	Proxy     string `json:"proxy"`
	Type      string `json:"type"`
	Namespace string `json:"namespace"`
	Identity  string `json:"identity"`
}

// ExplainResult is /ui/api/explain's answer: explain's trace plus a one-line
// verdict for the page.
type ExplainResult struct {
	Proxy   string         `json:"proxy"`
	Verdict string         `json:"verdict"`
	Trace   *explain.Trace `json:"trace"`
}

// serveExplain: ?proxy=<node ID>&url=&method=&header=name:value (repeatable).
// It walks the request as `mizzen explain` does: the caller's outbound side,
// then each destination's inbound side when that workload's sidecar is
// connected.
func (h *handler) serveExplain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	headers := map[string]string{}
	for _, hv := range q["header"] {
		if strings.TrimSpace(hv) == "" {
			continue
		}
		k, v, ok := strings.Cut(hv, ":")
		if !ok {
			http.Error(w, fmt.Sprintf("header %q: want name: value", hv), http.StatusBadRequest)
			return
		}
		headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	req, err := explain.NewRequest(q.Get("method"), q.Get("url"), headers)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res, err := h.explain(q.Get("proxy"), req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, res)
}

func (h *handler) explain(proxyID string, req *explain.Request) (*ExplainResult, error) {
	var proxies []syncRow
	if err := h.getDebug("/debug/syncz", &proxies); err != nil {
		return nil, err
	}
	var src *syncRow
	for i := range proxies {
		if proxies[i].Proxy == proxyID {
			src = &proxies[i]
		}
	}
	if src == nil {
		return nil, fmt.Errorf("no connected proxy %q", proxyID)
	}
	cfg, err := h.config(proxyID)
	if err != nil {
		return nil, err
	}
	if req.DestIP == "" {
		req.DestIP = explain.ResolveVIP(cfg, req.URL.Hostname())
	}
	trace := explain.Outbound(cfg, req)
	seen := map[string]bool{}
	for _, d := range trace.Destinations {
		for _, e := range d.Endpoints {
			host, portS, err := net.SplitHostPort(e.Address)
			if err != nil || seen[host] {
				continue
			}
			var dst *syncRow
			for i := range proxies {
				if proxyIP(proxies[i].Proxy) == host && proxies[i].Type == "sidecar" {
					dst = &proxies[i]
				}
			}
			if dst == nil {
				continue
			}
			seen[host] = true
			dcfg, err := h.config(dst.Proxy)
			if err != nil {
				return nil, err
			}
			port, _ := strconv.Atoi(portS)
			mtls := e.TLSMode == "istio" && strings.HasPrefix(d.MTLS, "auto mTLS") || strings.HasPrefix(d.MTLS, "TLS")
			in := *req
			in.DestIP = host
			if mtls {
				in.SourcePrincipal = strings.TrimPrefix(src.Identity, "spiffe://")
			}
			in.SourceIP = proxyIP(src.Proxy)
			explain.Inbound(dcfg, trace, &in, port, mtls)
			break
		}
	}
	return &ExplainResult{Proxy: proxyID, Verdict: verdict(trace), Trace: trace}, nil
}

// verdict sums the trace up in one line: the destination side's decision
// when a destination sidecar was walked, else where the route sends it.
func verdict(t *explain.Trace) string {
	if t.Decision != "" {
		v := t.Decision
		if t.Policy != "" {
			v += " by " + t.Policy
		}
		return v
	}
	if len(t.Destinations) > 0 {
		var to []string
		for _, d := range t.Destinations {
			s := d.Cluster
			if d.Total > 0 {
				s += fmt.Sprintf(" (%d%%)", d.Weight*100/d.Total)
			}
			to = append(to, s)
		}
		v := "ROUTED to " + strings.Join(to, ", ")
		if t.VirtualService != "" {
			v += " by VirtualService " + t.VirtualService
		}
		return v
	}
	if n := len(t.Steps); n > 0 {
		last := t.Steps[n-1]
		return "NOT ROUTED: " + last.Stage + ": " + last.Result
	}
	return "NOT ROUTED"
}

func proxyIP(id string) string {
	if parts := strings.Split(id, "~"); len(parts) == 4 {
		return parts[1]
	}
	return ""
}

// config reads mizzen's view of a proxy from /debug/config_dump.
func (h *handler) config(proxyID string) (*explain.Config, error) {
	var dump map[string]struct {
		Resources []json.RawMessage `json:"resources"`
	}
	if err := h.getDebug("/debug/config_dump?proxyID="+url.QueryEscape(proxyID), &dump); err != nil {
		return nil, err
	}
	cfg := &explain.Config{ProxyID: proxyID, Routes: map[string]*routev3.RouteConfiguration{},
		Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}}
	for typ, d := range dump {
		if typ == "sds" {
			continue
		}
		for i, raw := range d.Resources {
			var a anypb.Any
			if err := unmarshalAny(raw, &a); err != nil {
				return nil, fmt.Errorf("%s resource %d of %s: %w", typ, i, proxyID, err)
			}
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("%s resource %d of %s: %w", typ, i, proxyID, err)
			}
			switch x := m.(type) {
			case *listenerv3.Listener:
				cfg.Listeners = append(cfg.Listeners, x)
			case *routev3.RouteConfiguration:
				cfg.Routes[x.GetName()] = x
			case *clusterv3.Cluster:
				cfg.Clusters[x.GetName()] = x
			case *endpointv3.ClusterLoadAssignment:
				cfg.Endpoints[x.GetClusterName()] = x
			}
		}
	}
	return cfg, nil
}

// unmarshalAny decodes protojson, keeping any typed config whose type this
// binary does not link as an opaque Struct instead of failing on it (explain
// only looks into the filters it knows).
func unmarshalAny(raw []byte, a *anypb.Any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(opaque(v))
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, a)
}

func opaque(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if t, ok := x["@type"].(string); ok {
			if _, err := protoregistry.GlobalTypes.FindMessageByURL(t); err != nil {
				rest := map[string]any{"type_unknown_to_mizzen": t}
				for k, val := range x {
					if k != "@type" {
						rest[k] = val
					}
				}
				return map[string]any{"@type": "type.googleapis.com/google.protobuf.Struct", "value": rest}
			}
		}
		for k, val := range x {
			x[k] = opaque(val)
		}
	case []any:
		for i, val := range x {
			x[i] = opaque(val)
		}
	}
	return v
}
