package xds

import (
	"fmt"
	"log/slog"
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

// generation holds everything built from one snapshot. What a proxy's config
// depends on is built once per distinct key and shared (marshalled bytes
// included) by every proxy with that key: per scope (what the proxy may see:
// exportTo and its Sidecar resource) the clusters, endpoints and outbound
// listeners; per scope and proxy namespace/labels the outbound routes or
// gateway config. Parts are built lazily, the first time a proxy needs them.
type generation struct {
	snap   *model.Snapshot
	config *configParts

	mu        sync.Mutex
	endpoints map[string]*part // by scope key
	creds     map[string]*part // gateway credentials by namespace (gateway_secrets.go)
	// gatewayEndpoints are the load assignments of a gateway's own clusters
	// (AUTO_PASSTHROUGH, translate.GatewayEndpoints), by scope and gateway key:
	// per generation, as they follow endpoint changes.
	gatewayEndpoints map[string]*part
	// prevEndpoints and prevSnap are the previous generation's endpoint parts
	// when its config is the same: services whose endpoints did not change keep
	// their items (endpoints.go). The parts are dropped once the next generation
	// takes them, so generations never chain.
	prevEndpoints map[string]*part
	prevSnap      *model.Snapshot

	touchedOnce sync.Once
	touched     map[string]bool // addresses whose endpoints changed since prevSnap
}

// configParts is everything that depends on config but not on endpoints, so an
// endpoint-only change reuses it whole.
type configParts struct {
	snap *model.Snapshot
	log  *slog.Logger

	mu        sync.Mutex
	scopes    map[string]*scopeParts
	telemetry map[string]*telemetryParts // by translate.TelemetryKey (telemetry.go)
}

// scopeParts is the config of one scope.
type scopeParts struct {
	view     *model.Snapshot
	log      *slog.Logger
	clusters *part
	outbound *part // sidecar outbound listeners

	mu       sync.Mutex
	sidecars map[sidecarID]*sidecarParts
	gateways map[string]*gatewayParts
	// The sidecar route tables' shared virtual hosts, built and marshalled
	// once per scope (under mu).
	vhosts *translate.VirtualHostMemo
	routes *routeEncoder
}

// sidecarParts is what a sidecar's outbound config adds per proxy key: route
// tables and the L4 listeners whose rules match on the calling workload.
type sidecarParts struct {
	routes, listeners *part
}

type gatewayParts struct {
	listeners, routes, clusters *part
}

func clusterName(c *clusterv3.Cluster) string              { return c.GetName() }
func claName(c *endpointv3.ClusterLoadAssignment) string   { return c.GetClusterName() }
func listenerName(l *listenerv3.Listener) string           { return l.GetName() }
func routeConfigName(r *routev3.RouteConfiguration) string { return r.GetName() }

// newGeneration starts a generation for snap. With prev from the same config
// (equal ConfigHash) the config parts are reused whole: clusters, listeners and
// routes keep their items and versions, so only EDS is pushed.
func newGeneration(snap *model.Snapshot, prev *generation, log *slog.Logger) (*generation, error) {
	g := &generation{snap: snap, endpoints: map[string]*part{}, creds: map[string]*part{}, gatewayEndpoints: map[string]*part{}}
	if prev != nil && prev.snap.ConfigHash == snap.ConfigHash {
		g.config = prev.config
		g.prevEndpoints, g.prevSnap = prev.handOverEndpoints()
	} else {
		g.config = &configParts{snap: snap, log: log, scopes: map[string]*scopeParts{}}
	}
	// Build the unscoped view now, so a broken translation is reported before
	// any proxy is touched and most proxies find their parts ready.
	if _, err := g.config.scope(model.Scope{}); err != nil {
		return nil, err
	}
	if _, err := g.scopeEndpoints(model.Scope{}); err != nil {
		return nil, err
	}
	return g, nil
}

// endpointOnly reports whether g differs from prev in endpoints alone.
func (g *generation) endpointOnly(prev *generation) bool {
	return prev != nil && g.config == prev.config
}

func (cp *configParts) scope(sc model.Scope) (*scopeParts, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if sp, ok := cp.scopes[sc.Key]; ok {
		return sp, nil
	}
	view := cp.snap.View(sc)
	sp := &scopeParts{view: view, log: cp.log, sidecars: map[sidecarID]*sidecarParts{}, gateways: map[string]*gatewayParts{},
		vhosts: translate.NewVirtualHostMemo(), routes: newRouteEncoder()}
	var err error
	if sp.clusters, err = newPart(append(translate.StaticClusters(), translate.OutboundClusters(view)...), clusterName); err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	if sp.outbound, err = newPart(translate.SidecarOutboundListeners(view), listenerName); err != nil {
		return nil, fmt.Errorf("outbound listeners: %w", err)
	}
	cp.scopes[sc.Key] = sp
	return sp, nil
}

func (g *generation) scopeEndpoints(sc model.Scope) (*part, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.endpoints[sc.Key]; ok {
		return p, nil
	}
	p, err := endpointsPart(g.snap.View(sc), g.prevEndpoints[sc.Key], g.prevSnap)
	if err != nil {
		return nil, fmt.Errorf("endpoints: %w", err)
	}
	g.endpoints[sc.Key] = p
	return p, nil
}

// gatewayKey is what a gateway's listeners, routes and JWT clusters depend
// on: its namespace, labels (Gateway selectors, RequestAuthentication), bind
// address, whether it proved an identity (credentials and ISTIO_MUTUAL need
// one) or runs istio-agent, and its addresses (the Service targetPorts it
// binds). Gateways are few: the full label set is fine.
func gatewayKey(p *model.Proxy) string {
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(string(p.Type))
	b.WriteString("|" + p.Namespace + "|" + p.GatewayBindIP)
	if p.Identity != "" {
		b.WriteString("|id")
	}
	if p.Unprivileged {
		b.WriteString("|unprivileged")
	}
	if p.AgentSDS() {
		// Certificate files come from istio-agent's SDS, else from the files.
		b.WriteString("|agent")
	}
	// Listeners bind the targetPorts of the Services at the proxy's addresses.
	b.WriteString("|" + strings.Join(p.InstanceIPs, ","))
	for _, k := range keys {
		b.WriteString("|" + k + "=" + p.Labels[k])
	}
	return b.String()
}

// sidecarKey is what a sidecar's outbound routes and L4 listeners depend on
// beyond its scope: its namespace (short-name domains, sourceNamespace) and
// which sourceLabels selectors its labels match, not the labels themselves.
// Every workload has labels of its own (app, version, pod-template-hash), so
// keying by them made one copy of every route table per workload; keyed so, a
// mesh without sourceLabels has one per namespace, and a VirtualService with
// sourceLabels adds one variant for the workloads it selects.
func sidecarKey(view *model.Snapshot, p *model.Proxy) sidecarID {
	return sidecarID{namespace: p.Namespace, sources: view.SourceLabelKey(p.Labels)}
}

// sidecarID keys a scope's sidecar parts (sidecarKey); a struct, so that
// looking one up allocates nothing.
type sidecarID struct{ namespace, sources string }

func (sp *scopeParts) sidecar(p *model.Proxy) (*sidecarParts, error) {
	key := sidecarKey(sp.view, p)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sc, ok := sp.sidecars[key]; ok {
		return sc, nil
	}
	r, err := sp.routes.part(translate.SidecarOutboundRoutesShared(sp.view, p, sp.vhosts))
	if err != nil {
		return nil, err
	}
	l, err := newPart(translate.SidecarOutboundProxyListeners(sp.view, p), listenerName)
	if err != nil {
		return nil, err
	}
	sc := &sidecarParts{routes: r, listeners: l}
	sp.sidecars[key] = sc
	return sc, nil
}

func (sp *scopeParts) gateway(p *model.Proxy) (*gatewayParts, error) {
	key := gatewayKey(p)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if gp, ok := sp.gateways[key]; ok {
		return gp, nil
	}
	l, err := newPart(translate.GatewayListeners(sp.view, p), listenerName)
	if err != nil {
		return nil, err
	}
	if ports := translate.PrivilegedGatewayPorts(sp.view, p); len(ports) > 0 && sp.log != nil {
		// Once per config change and gateway kind, not per proxy or push.
		sp.log.Warn("gateway servers need ports below 1024, which this unprivileged gateway (UNPRIVILEGED_POD) cannot bind: no listener for them; map the gateway Service's port to a targetPort of 1024 or more",
			"proxy", p.ID, "ports", ports)
	}
	// RequestAuthentication selects by namespace and labels: part of the proxy key.
	c, err := newPart(append(translate.JWTClusters(sp.view, p), translate.GatewayClusters(sp.view, p)...), clusterName)
	if err != nil {
		return nil, err
	}
	r, err := newPart(translate.GatewayRoutes(sp.view, p), routeConfigName)
	if err != nil {
		return nil, err
	}
	gp := &gatewayParts{listeners: l, routes: r, clusters: c}
	sp.gateways[key] = gp
	return gp, nil
}

// gatewayEndpointsFor returns the load assignments of the gateway's own
// clusters (nil: none), built once per generation, scope and gateway key.
func (g *generation) gatewayEndpointsFor(sc model.Scope, sp *scopeParts, p *model.Proxy) (*part, error) {
	key := sc.Key + "#" + gatewayKey(p)
	g.mu.Lock()
	defer g.mu.Unlock()
	if gp, ok := g.gatewayEndpoints[key]; ok {
		return gp, nil
	}
	var gp *part
	if cla := translate.GatewayEndpoints(sp.view, p); len(cla) > 0 {
		var err error
		if gp, err = newPart(cla, claName); err != nil {
			return nil, err
		}
	}
	g.gatewayEndpoints[key] = gp
	return gp, nil
}

// inboundParts is a sidecar's own inbound clusters and virtualInbound, kept on
// its conn: they depend on config and on the proxy's own service instances
// only (translate.InboundKey), so a push that changes neither reuses them.
type inboundParts struct {
	config              *configParts
	key                 string
	clusters, listeners *part
	// snapVersion is the snapshot they were last found valid for: in the next
	// one, with the same config, they stay valid unless an endpoint at one of
	// the proxy's addresses changed (generation.endpointsTouch).
	snapVersion uint64
}

// inbound returns p's inbound parts, prev's when still valid.
// sameConfigAsLast reports whether a proxy's last build (its inbound parts)
// was made by the generation g follows, and g has the same config.
func (g *generation) sameConfigAsLast(prev *inboundParts) bool {
	return prev != nil && prev.config == g.config && g.prevSnap != nil && prev.snapVersion == g.prevSnap.Version
}

func (g *generation) inbound(p *model.Proxy, prev *inboundParts) (*inboundParts, error) {
	if g.sameConfigAsLast(prev) && !g.endpointsTouch(p) {
		kept := *prev
		kept.snapVersion = g.snap.Version
		return &kept, nil
	}
	key := translate.InboundKey(g.snap, p)
	if prev != nil && prev.config == g.config && prev.key == key {
		kept := *prev
		kept.snapVersion = g.snap.Version
		return &kept, nil
	}
	c, err := newPart(append(translate.InboundClusters(g.snap, p), translate.JWTClusters(g.snap, p)...), clusterName)
	if err != nil {
		return nil, fmt.Errorf("inbound clusters: %w", err)
	}
	l, err := newPart(translate.SidecarInboundListeners(g.snap, p), listenerName)
	if err != nil {
		return nil, fmt.Errorf("inbound listeners: %w", err)
	}
	return &inboundParts{config: g.config, key: key, clusters: c, listeners: l, snapVersion: g.snap.Version}, nil
}

// build returns the resource sets of one proxy; SDS holds only the
// generation's share of it (see conn.sdsSet). prevInbound is what the last
// build returned for the proxy (nil: none), reused when still valid; so is a
// set of prev made of the very same parts (an endpoint change leaves a
// proxy's clusters, listeners and routes as they were: 5,000 sets, versions
// and hashes a change at 1,000 proxies need not make).
func (g *generation) build(p *model.Proxy, prevInbound *inboundParts, prev [numTypes]*resourceSet) (out [numTypes]*resourceSet, inbound *inboundParts, err error) {
	set := func(t typeIndex, parts ...*part) *resourceSet { return reuseSet(prev[t], parts) }
	sc := g.config.snap.ScopeFor(p)
	// Endpoints do not depend on the proxy's identity: shared by both kinds.
	eps, err := g.scopeEndpoints(sc.WithoutClientMTLS())
	if err != nil {
		return out, nil, err
	}
	if p.Type != model.RouterProxy && g.sameConfigAsLast(prevInbound) && prev[cdsType] != nil && prev[ldsType] != nil &&
		prev[rdsType] != nil && !g.endpointsTouch(p) {
		// An endpoint change that touched none of the sidecar's own
		// instances: its clusters, listeners and routes are the sets it
		// holds (the same parts, which every one of its keys would find
		// again); only its endpoints are new.
		kept := *prevInbound
		kept.snapVersion = g.snap.Version
		out = prev
		out[edsType] = set(edsType, eps)
		out[sdsType], err = g.sdsSet(p)
		return out, &kept, err
	}
	sp, err := g.config.scope(sc)
	if err != nil {
		return out, nil, err
	}
	tp, err := g.config.telemetryFor(p)
	if err != nil {
		return out, nil, err
	}
	if p.Type == model.RouterProxy {
		gp, err := sp.gateway(p)
		if err != nil {
			return out, nil, fmt.Errorf("gateway config: %w", err)
		}
		out[cdsType] = set(cdsType, sp.clusters, gp.clusters, tp.clusters)
		out[ldsType] = set(ldsType, gp.listeners, tp.listeners)
		out[rdsType] = set(rdsType, gp.routes)
		geps, err := g.gatewayEndpointsFor(sc, sp, p)
		if err != nil {
			return out, nil, fmt.Errorf("gateway endpoints: %w", err)
		}
		out[edsType] = set(edsType, eps, geps)
	} else {
		sc, err := sp.sidecar(p)
		if err != nil {
			return out, nil, fmt.Errorf("outbound routes and listeners: %w", err)
		}
		in, err := g.inbound(p, prevInbound)
		if err != nil {
			return out, nil, err
		}
		inbound = in
		out[cdsType] = set(cdsType, sp.clusters, in.clusters, tp.clusters)
		out[ldsType] = set(ldsType, sp.outbound, sc.listeners, in.listeners, tp.listeners)
		out[rdsType] = set(rdsType, sc.routes)
	}
	if out[edsType] == nil {
		out[edsType] = set(edsType, eps)
	}
	// SDS: only the generation's part (gateway credentials, possibly none);
	// install adds the proxy's own certificate (conn.sdsSet).
	out[sdsType], err = g.sdsSet(p)
	return out, inbound, err
}

// sdsSet is the generation's share of a proxy's SDS set: its gateway
// credentials, possibly none.
func (g *generation) sdsSet(p *model.Proxy) (*resourceSet, error) {
	creds, err := g.gatewayCredentials(p)
	if err != nil {
		return nil, fmt.Errorf("gateway credentials: %w", err)
	}
	return newResourceSet(creds), nil
}

// reuseSet is prev when it holds exactly parts (nil parts left out), else a
// new set of them.
func reuseSet(prev *resourceSet, parts []*part) *resourceSet {
	if prev != nil {
		i := 0
		for _, p := range parts {
			if p == nil {
				continue
			}
			if i >= len(prev.parts) || prev.parts[i] != p {
				return newResourceSet(parts...)
			}
			i++
		}
		if i == len(prev.parts) {
			return prev
		}
	}
	return newResourceSet(parts...)
}

// maxChangedNames bounds how many names per type a change record lists.
const maxChangedNames = 20

// changedNames lists the clusters, outbound listeners and endpoints that differ
// from prev in the unscoped view (what most proxies see), for /debug/changes.
// The diffs are the parts' shared ones, computed once for every proxy anyway.
func (g *generation) changedNames(prev *generation) (map[string][]string, bool) {
	if prev == nil {
		return nil, false
	}
	out := map[string][]string{}
	truncated := false
	add := func(typ string, cur, old *part) {
		if cur == nil || old == nil {
			return
		}
		var names []string
		for _, it := range cur.changedSince(old) {
			names = append(names, it.name)
		}
		for _, it := range old.items {
			if cur.byName[it.name] == nil {
				names = append(names, "-"+it.name) // removed
			}
		}
		sort.Strings(names)
		if len(names) > maxChangedNames {
			names, truncated = names[:maxChangedNames], true
		}
		if len(names) > 0 {
			out[typ] = names
		}
	}
	if g.config != prev.config {
		cur, err1 := g.config.scope(model.Scope{})
		old, err2 := prev.config.scope(model.Scope{})
		if err1 == nil && err2 == nil {
			add("cds", cur.clusters, old.clusters)
			add("lds", cur.outbound, old.outbound)
		}
	}
	g.mu.Lock()
	cur := g.endpoints[""]
	g.mu.Unlock()
	prev.mu.Lock()
	old := prev.endpoints[""]
	prev.mu.Unlock()
	add("eds", cur, old)
	return out, truncated
}
