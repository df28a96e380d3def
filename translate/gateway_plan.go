package translate

import (
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// gatewayListenerPlan is one bound listener of a gateway proxy: the servers
// of its Gateways on one (bind, port), as the listener carries them. A port
// carries plain-HTTP servers (one HTTP connection manager), else servers told
// apart by SNI (HTTPS, TLS terminated, PASSTHROUGH, AUTO_PASSTHROUGH), else
// one TCP server; the model reports every server left out
// (GatewayPortConflict, GatewayPortProtocolConflict, GatewayServerConflict).
type gatewayListenerPlan struct {
	bind     string // the servers' bind address; "" means the proxy's (0.0.0.0)
	port     uint32 // the (first) servers' port number
	bindPort uint32 // where the listener listens: the Service's targetPort, else port
	http     []gatewayServer
	chains   []gatewayChain
	tcp      *gatewayServer
}

// gatewayChain is one server routed by SNI.
type gatewayChain struct {
	server      gatewayServer
	kind        model.GatewayServerKind
	routeName   string   // HTTPS: its own route table
	serverNames []string // the server's hosts as SNI names; none for "*"
}

// listenerName is istiod's `<bind>_<port>`, `0.0.0.0_<port>` without a bind.
func (p *gatewayListenerPlan) listenerName() string {
	if p.bind != "" {
		return fmt.Sprintf("%s_%d", p.bind, p.bindPort)
	}
	return OutboundHTTPListenerName(p.bindPort)
}

// httpRouteName is `http.<port>`, `http.<port>.<bind>` for a bound server.
func (p *gatewayListenerPlan) httpRouteName() string {
	return GatewayHTTPRouteName(p.bindPort) + bindSuffix(p.bind)
}

func bindSuffix(bind string) string {
	if bind == "" {
		return ""
	}
	return "." + bind
}

// gatewayPlans lays out the listeners of a gateway proxy, by port then bind.
// Servers of older Gateways come first, as istiod merges them.
func gatewayPlans(snap *model.Snapshot, proxy *model.Proxy) []*gatewayListenerPlan {
	byKey := map[string]*gatewayListenerPlan{}
	all := map[*gatewayListenerPlan][]gatewayServer{}
	var plans []*gatewayListenerPlan
	for _, gw := range GatewaysForProxy(snap, proxy) {
		for _, s := range gw.Spec.GetServers() {
			if !model.GatewayServerServable(s) {
				continue // ValidateGateway says why
			}
			// Keyed by the port bound, as istiod merges servers: server ports
			// 80 and 8080 behind a Service 80→8080 share listener 0.0.0.0_8080
			// (two listeners of one name would be refused).
			bindPort := GatewayBindPort(snap, proxy, s.GetPort().GetNumber())
			key := fmt.Sprintf("%s|%d", s.GetBind(), bindPort)
			p := byKey[key]
			if p == nil {
				p = &gatewayListenerPlan{bind: s.GetBind(), port: s.GetPort().GetNumber(), bindPort: bindPort}
				byKey[key] = p
				plans = append(plans, p)
			}
			all[p] = append(all[p], gatewayServer{gw, s})
		}
	}
	for _, p := range plans {
		servers := all[p]
		for _, gs := range servers {
			if model.ServerKind(gs.server) == model.ServerHTTP {
				p.http = append(p.http, gs)
			}
		}
		if len(p.http) > 0 {
			continue
		}
		claimed := map[string]bool{}
		seenRoute := map[string]int{}
		anySNI := false
		for _, gs := range servers {
			kind := model.ServerKind(gs.server)
			if !kind.SNIRouted() {
				continue
			}
			anySNI = true
			if !gatewayServerReady(snap, proxy, gs.server) {
				continue
			}
			names := model.SNINames(gs.server.GetHosts())
			if !claimSNI(claimed, names) {
				continue // a host of an earlier server: Envoy refuses equal matches
			}
			c := gatewayChain{server: gs, kind: kind, serverNames: names}
			if kind == model.ServerHTTPS {
				rn := GatewayHTTPSRouteName(gs.server.GetPort().GetNumber(), gs.server.GetPort().GetName(), gs.gateway.Name, gs.gateway.Namespace) + bindSuffix(p.bind)
				// Two servers of one Gateway with the same port name would share
				// Istio's route name; later ones get a suffix so each keeps its hosts.
				if n := seenRoute[rn]; n > 0 {
					seenRoute[rn]++
					rn = fmt.Sprintf("%s.%d", rn, n)
				} else {
					seenRoute[rn] = 1
				}
				c.routeName = rn
			}
			p.chains = append(p.chains, c)
		}
		if anySNI {
			continue
		}
		for _, gs := range servers {
			if model.ServerKind(gs.server) == model.ServerTCP {
				p.tcp = &gs
				break
			}
		}
	}
	sort.SliceStable(plans, func(i, j int) bool {
		if plans[i].bindPort != plans[j].bindPort {
			return plans[i].bindPort < plans[j].bindPort
		}
		return plans[i].bind < plans[j].bind
	})
	return plans
}

// claimSNI claims every name (the empty name for a match-all server) unless
// one is taken already.
func claimSNI(claimed map[string]bool, names []string) bool {
	keys := names
	if len(keys) == 0 {
		keys = []string{""}
	}
	for _, n := range keys {
		if claimed[strings.ToLower(n)] {
			return false
		}
	}
	for _, n := range keys {
		claimed[strings.ToLower(n)] = true
	}
	return true
}

// gatewayServerReady: the proxy can be given what the server needs.
// Credentials (credentialName) and the workload certificate (ISTIO_MUTUAL)
// go only to a proxy whose stream proved an identity (istiod's rule; Envoy
// would keep the listener warming for a secret that never comes), and a
// credential must be valid in the proxy's namespace. Certificate files are
// read in the gateway's own filesystem and need neither.
func gatewayServerReady(snap *model.Snapshot, proxy *model.Proxy, s *networkingapi.Server) bool {
	if !model.IsTLSTerminating(s) {
		return true
	}
	t := s.GetTls()
	if t.GetMode() == networkingapi.ServerTLSSettings_ISTIO_MUTUAL {
		return proxy.Identity != ""
	}
	if len(model.ServerCredentialNames(t)) > 0 {
		return proxy.Identity != "" && snap.ServerCredentialUsable(proxy.Namespace, s)
	}
	return true
}
