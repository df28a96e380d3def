package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// proxyConfig is one proxy's xDS config as one side sees it: mizzen's view
// (what it would send now, /debug/config_dump) or the proxy's own (Envoy's
// admin /config_dump). Both are read into the same protos, so tables and diffs
// do not care where config came from.
type proxyConfig struct {
	// source names the side, for headers and errors.
	source string
	// versions are the xDS versions per type label (cds, eds, lds, rds, sds).
	versions  map[string]string
	clusters  []entry[*clusterv3.Cluster]
	listeners []entry[*listenerv3.Listener]
	routes    []entry[*routev3.RouteConfiguration]
	endpoints []entry[*endpointv3.ClusterLoadAssignment]
	secrets   []entry[*tlsv3.Secret]
	// hosts is Envoy's /clusters?format=json (admin only): the endpoints as
	// Envoy uses them, with health and outlier state.
	hosts *adminv3.Clusters
}

// entry is one resource and its state on its side.
type entry[T proto.Message] struct {
	msg     T
	version string
	// state is ACTIVE, WARMING, DRAINING or STATIC (bootstrap, not from xDS).
	state       string
	lastUpdated time.Time
}

func (e entry[T]) dynamic() bool { return e.state != "STATIC" }

// baseURL turns "127.0.0.1:15014" or "http://127.0.0.1:15014/" into a URL
// without trailing slash.
func baseURL(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return addr
}

// httpGet fetches a URL and fails on anything but 200, quoting the body (mizzen
// and Envoy say what is wrong in it).
func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// resolveProxy finds the connected proxy a user means: an exact node ID, or
// the one ID containing name (a pod name, pod.namespace, an IP).
func resolveProxy(ctx context.Context, mizzen, name string) (string, error) {
	rows, err := fetchSyncz(ctx, mizzen)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, r := range rows {
		if r.ProxyID == name {
			return name, nil
		}
		if strings.Contains(r.ProxyID, name) {
			ids = append(ids, r.ProxyID)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("no proxy connected to mizzen at %s matches %q (see mizzen proxy-status)", mizzen, name)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%q matches %d proxies, name one: %s", name, len(ids), strings.Join(ids, ", "))
}

// proxyIDs lists the connected proxies, for shell completion.
func proxyIDs(ctx context.Context, mizzen string) []string {
	rows, err := fetchSyncz(ctx, mizzen)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, proxyName(r.ProxyID))
	}
	return out
}

// loadMizzenView reads what mizzen serves the proxy now.
func loadMizzenView(ctx context.Context, mizzen, proxyID string) (*proxyConfig, error) {
	body, err := httpGet(ctx, baseURL(mizzen)+"/debug/config_dump?proxyID="+url.QueryEscape(proxyID))
	if err != nil {
		return nil, fmt.Errorf("reading mizzen's view of %s: %w", proxyID, err)
	}
	var dump map[string]struct {
		Version   string            `json:"version"`
		Resources []json.RawMessage `json:"resources"`
	}
	if err := json.Unmarshal(body, &dump); err != nil {
		return nil, fmt.Errorf("decoding mizzen's config_dump of %s: %w", proxyID, err)
	}
	pc := &proxyConfig{source: "mizzen " + mizzen, versions: map[string]string{}}
	for typ, d := range dump {
		pc.versions[typ] = d.Version
		for i, raw := range d.Resources {
			var a anypb.Any
			if err := unmarshalJSON(raw, &a); err != nil {
				return nil, fmt.Errorf("mizzen's %s resource %d of %s: %w", typ, i, proxyID, err)
			}
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("mizzen's %s resource %d of %s: %w", typ, i, proxyID, err)
			}
			pc.add(m, d.Version, "ACTIVE", time.Time{})
		}
	}
	pc.sort()
	return pc, nil
}

func (pc *proxyConfig) add(m proto.Message, version, state string, updated time.Time) {
	switch r := m.(type) {
	case *clusterv3.Cluster:
		pc.clusters = append(pc.clusters, entry[*clusterv3.Cluster]{r, version, state, updated})
	case *listenerv3.Listener:
		pc.listeners = append(pc.listeners, entry[*listenerv3.Listener]{r, version, state, updated})
	case *routev3.RouteConfiguration:
		pc.routes = append(pc.routes, entry[*routev3.RouteConfiguration]{r, version, state, updated})
	case *endpointv3.ClusterLoadAssignment:
		pc.endpoints = append(pc.endpoints, entry[*endpointv3.ClusterLoadAssignment]{r, version, state, updated})
	case *tlsv3.Secret:
		pc.secrets = append(pc.secrets, entry[*tlsv3.Secret]{r, version, state, updated})
	}
}

func (pc *proxyConfig) sort() {
	sortEntries(pc.clusters, (*clusterv3.Cluster).GetName)
	sortEntries(pc.listeners, (*listenerv3.Listener).GetName)
	sortEntries(pc.routes, (*routev3.RouteConfiguration).GetName)
	sortEntries(pc.endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	sortEntries(pc.secrets, (*tlsv3.Secret).GetName)
}

func sortEntries[T proto.Message](es []entry[T], name func(T) string) {
	sort.SliceStable(es, func(i, j int) bool { return name(es[i].msg) < name(es[j].msg) })
}

// loadEnvoyAdmin reads the proxy's own config from its admin interface:
// /config_dump?include_eds, and /clusters?format=json when hosts is set.
func loadEnvoyAdmin(ctx context.Context, admin string, hosts bool) (*proxyConfig, error) {
	base := baseURL(admin)
	body, err := httpGet(ctx, base+"/config_dump?include_eds")
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's config from its admin %s: %w", admin, err)
	}
	var doc struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding %s/config_dump: %w", base, err)
	}
	pc := &proxyConfig{source: "envoy " + admin, versions: map[string]string{}}
	for _, raw := range doc.Configs {
		var head struct {
			Type string `json:"@type"`
		}
		_ = json.Unmarshal(raw, &head)
		var err error
		switch head.Type {
		case "type.googleapis.com/envoy.admin.v3.ClustersConfigDump":
			d := &adminv3.ClustersConfigDump{}
			if err = unmarshalJSON(raw, d); err == nil {
				pc.versions["cds"] = d.GetVersionInfo()
				for _, c := range d.GetStaticClusters() {
					err = pc.addAny(c.GetCluster(), "", "STATIC", c.GetLastUpdated(), err)
				}
				for _, c := range d.GetDynamicActiveClusters() {
					err = pc.addAny(c.GetCluster(), c.GetVersionInfo(), "ACTIVE", c.GetLastUpdated(), err)
				}
				for _, c := range d.GetDynamicWarmingClusters() {
					err = pc.addAny(c.GetCluster(), c.GetVersionInfo(), "WARMING", c.GetLastUpdated(), err)
				}
			}
		case "type.googleapis.com/envoy.admin.v3.ListenersConfigDump":
			d := &adminv3.ListenersConfigDump{}
			if err = unmarshalJSON(raw, d); err == nil {
				pc.versions["lds"] = d.GetVersionInfo()
				for _, l := range d.GetStaticListeners() {
					err = pc.addAny(l.GetListener(), "", "STATIC", l.GetLastUpdated(), err)
				}
				for _, l := range d.GetDynamicListeners() {
					// A listener being replaced has an active and a warming state:
					// the warming one is what Envoy will use.
					for _, st := range []struct {
						s     *adminv3.ListenersConfigDump_DynamicListenerState
						state string
					}{{l.GetWarmingState(), "WARMING"}, {l.GetActiveState(), "ACTIVE"}, {l.GetDrainingState(), "DRAINING"}} {
						if st.s != nil {
							err = pc.addAny(st.s.GetListener(), st.s.GetVersionInfo(), st.state, st.s.GetLastUpdated(), err)
							break
						}
					}
				}
			}
		case "type.googleapis.com/envoy.admin.v3.RoutesConfigDump":
			d := &adminv3.RoutesConfigDump{}
			if err = unmarshalJSON(raw, d); err == nil {
				for _, r := range d.GetStaticRouteConfigs() {
					err = pc.addAny(r.GetRouteConfig(), "", "STATIC", r.GetLastUpdated(), err)
				}
				for _, r := range d.GetDynamicRouteConfigs() {
					err = pc.addAny(r.GetRouteConfig(), r.GetVersionInfo(), "ACTIVE", r.GetLastUpdated(), err)
				}
			}
		case "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump":
			d := &adminv3.EndpointsConfigDump{}
			if err = unmarshalJSON(raw, d); err == nil {
				for _, e := range d.GetStaticEndpointConfigs() {
					err = pc.addAny(e.GetEndpointConfig(), "", "STATIC", e.GetLastUpdated(), err)
				}
				for _, e := range d.GetDynamicEndpointConfigs() {
					err = pc.addAny(e.GetEndpointConfig(), e.GetVersionInfo(), "ACTIVE", e.GetLastUpdated(), err)
				}
			}
		case "type.googleapis.com/envoy.admin.v3.SecretsConfigDump":
			d := &adminv3.SecretsConfigDump{}
			if err = unmarshalJSON(raw, d); err == nil {
				for _, s := range d.GetStaticSecrets() {
					err = pc.addAny(s.GetSecret(), "", "STATIC", s.GetLastUpdated(), err)
				}
				for _, s := range d.GetDynamicActiveSecrets() {
					err = pc.addAny(s.GetSecret(), s.GetVersionInfo(), "ACTIVE", s.GetLastUpdated(), err)
				}
				for _, s := range d.GetDynamicWarmingSecrets() {
					err = pc.addAny(s.GetSecret(), s.GetVersionInfo(), "WARMING", s.GetLastUpdated(), err)
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("decoding %s from %s/config_dump: %w", strings.TrimPrefix(head.Type, "type.googleapis.com/"), base, err)
		}
	}
	if hosts {
		body, err := httpGet(ctx, base+"/clusters?format=json")
		if err != nil {
			return nil, fmt.Errorf("reading the proxy's endpoints from its admin %s: %w", admin, err)
		}
		pc.hosts = &adminv3.Clusters{}
		if err := unmarshalJSON(body, pc.hosts); err != nil {
			return nil, fmt.Errorf("decoding %s/clusters?format=json: %w", base, err)
		}
	}
	pc.sort()
	return pc, nil
}

// addAny adds one resource of a config dump; it passes a previous error on.
func (pc *proxyConfig) addAny(a *anypb.Any, version, state string, updated *timestamppb.Timestamp, prev error) error {
	if prev != nil || a == nil {
		return prev
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return err
	}
	var t time.Time
	if updated != nil {
		t = updated.AsTime()
	}
	pc.add(m, version, state, t)
	return nil
}

// unmarshalJSON reads protobuf JSON from Envoy or mizzen. A newer Envoy may
// carry fields and extension types this binary does not know: unknown fields
// are dropped, and an Any of an unknown type is kept as a Struct (its JSON
// whole) instead of failing the whole dump.
func unmarshalJSON(raw []byte, m proto.Message) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(opaqueUnknownAnys(v))
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}

const structTypeURL = "type.googleapis.com/google.protobuf.Struct"

func opaqueUnknownAnys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if t, ok := x["@type"].(string); ok {
			if _, err := protoregistry.GlobalTypes.FindMessageByURL(t); err != nil {
				rest := map[string]any{"@type_unknown_to_mizzen": t}
				for k, val := range x {
					if k != "@type" {
						rest[k] = val
					}
				}
				return map[string]any{"@type": structTypeURL, "value": rest}
			}
		}
		for k, val := range x {
			x[k] = opaqueUnknownAnys(val)
		}
	case []any:
		for i, val := range x {
			x[i] = opaqueUnknownAnys(val)
		}
	}
	return v
}

// protoJSON renders protos the way -o json shows them: protojson field names,
// indented stably (protojson's own spacing is deliberately unstable).
func protoJSON[T proto.Message](msgs []T) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("[")
	for i, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString(",")
		}
		buf.Write(b)
	}
	buf.WriteString("]")
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteString("\n")
	return out.Bytes(), nil
}
