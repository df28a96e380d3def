package xds

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// generation holds everything built from one snapshot. What does not depend on
// the proxy is built once here and shared (marshalled bytes included) by every
// proxy; what depends on a proxy's namespace or labels is built once per
// distinct key, lazily, the first time a proxy with that key needs it.
type generation struct {
	snap      *model.Snapshot
	endpoints *part
	config    *configParts
}

// configParts is everything that depends on config but not on endpoints, so an
// endpoint-only change reuses it whole.
type configParts struct {
	snap     *model.Snapshot
	clusters *part
	outbound *part // sidecar outbound listeners

	mu       sync.Mutex
	sidecars map[string]*sidecarParts // by proxy key
	gateways map[string]*gatewayParts
}

// sidecarParts is what depends on a sidecar's namespace and labels: its
// outbound routes and the (usually no) outbound L4 listeners whose
// VirtualServices select callers.
type sidecarParts struct {
	routes, listeners *part
}

type gatewayParts struct {
	listeners, routes *part
}

func clusterName(c *clusterv3.Cluster) string              { return c.GetName() }
func claName(c *endpointv3.ClusterLoadAssignment) string   { return c.GetClusterName() }
func listenerName(l *listenerv3.Listener) string           { return l.GetName() }
func routeConfigName(r *routev3.RouteConfiguration) string { return r.GetName() }

// newGeneration builds the shared parts of snap. With prev from the same config
// (equal ConfigHash) only endpoints are rebuilt: clusters, listeners and routes
// keep their items and versions, so no CDS/LDS/RDS is pushed.
func newGeneration(snap *model.Snapshot, prev *generation) (*generation, error) {
	g := &generation{snap: snap}
	eps, err := newPart(translate.OutboundEndpoints(snap), claName)
	if err != nil {
		return nil, fmt.Errorf("endpoints: %w", err)
	}
	g.endpoints = eps
	if prev != nil && prev.snap.ConfigHash == snap.ConfigHash {
		g.config = prev.config
		return g, nil
	}
	cp := &configParts{snap: snap, sidecars: map[string]*sidecarParts{}, gateways: map[string]*gatewayParts{}}
	if cp.clusters, err = newPart(append(translate.StaticClusters(), translate.OutboundClusters(snap)...), clusterName); err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	if cp.outbound, err = newPart(translate.SidecarOutboundListeners(snap), listenerName); err != nil {
		return nil, fmt.Errorf("outbound listeners: %w", err)
	}
	g.config = cp
	return g, nil
}

// endpointOnly reports whether g differs from prev in endpoints alone.
func (g *generation) endpointOnly(prev *generation) bool {
	return prev != nil && g.config == prev.config
}

// proxyKey is what a sidecar's outbound routes and L4 listeners depend on: its
// namespace (for short-name domains and sourceNamespace) and labels (for
// sourceLabels).
func proxyKey(p *model.Proxy) string {
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(string(p.Type))
	b.WriteString("|" + p.Namespace + "|" + p.GatewayBindIP)
	for _, k := range keys {
		b.WriteString("|" + k + "=" + p.Labels[k])
	}
	return b.String()
}

func (cp *configParts) sidecar(p *model.Proxy) (*sidecarParts, error) {
	key := proxyKey(p)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if sp, ok := cp.sidecars[key]; ok {
		return sp, nil
	}
	r, err := newPart(translate.SidecarOutboundRoutes(cp.snap, p), routeConfigName)
	if err != nil {
		return nil, err
	}
	l, err := newPart(translate.SidecarOutboundProxyListeners(cp.snap, p), listenerName)
	if err != nil {
		return nil, err
	}
	sp := &sidecarParts{routes: r, listeners: l}
	cp.sidecars[key] = sp
	return sp, nil
}

func (cp *configParts) gateway(p *model.Proxy) (*gatewayParts, error) {
	key := proxyKey(p)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if gp, ok := cp.gateways[key]; ok {
		return gp, nil
	}
	l, err := newPart(translate.GatewayListeners(cp.snap, p), listenerName)
	if err != nil {
		return nil, err
	}
	r, err := newPart(translate.GatewayRoutes(cp.snap, p), routeConfigName)
	if err != nil {
		return nil, err
	}
	gp := &gatewayParts{listeners: l, routes: r}
	cp.gateways[key] = gp
	return gp, nil
}

// build returns the four resource sets of one proxy.
func (g *generation) build(p *model.Proxy) ([numTypes]*resourceSet, error) {
	var out [numTypes]*resourceSet
	if p.Type == model.RouterProxy {
		gp, err := g.config.gateway(p)
		if err != nil {
			return out, fmt.Errorf("gateway config: %w", err)
		}
		out[cdsType] = newResourceSet(g.config.clusters)
		out[ldsType] = newResourceSet(gp.listeners)
		out[rdsType] = newResourceSet(gp.routes)
	} else {
		sp, err := g.config.sidecar(p)
		if err != nil {
			return out, fmt.Errorf("outbound routes and listeners: %w", err)
		}
		inClusters, err := newPart(translate.InboundClusters(g.snap, p), clusterName)
		if err != nil {
			return out, fmt.Errorf("inbound clusters: %w", err)
		}
		inListeners, err := newPart(translate.SidecarInboundListeners(g.snap, p), listenerName)
		if err != nil {
			return out, fmt.Errorf("inbound listeners: %w", err)
		}
		out[cdsType] = newResourceSet(g.config.clusters, inClusters)
		out[ldsType] = newResourceSet(g.config.outbound, sp.listeners, inListeners)
		out[rdsType] = newResourceSet(sp.routes)
	}
	out[edsType] = newResourceSet(g.endpoints)
	return out, nil
}
