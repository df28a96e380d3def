package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// headlessListeners builds the outbound listeners of a headless Service's TCP
// and sniffed ports, as istiod does for clusterIP None: there is no VIP, a
// client dials a pod's own address (from DNS: <pod>.<service>…), so each
// endpoint gets a listener `<pod ip>_<port>` whose tcp_proxy goes to the
// port's original-destination cluster, i.e. to that very pod, over mTLS when
// the pods have sidecars. HTTP ports need none: 0.0.0.0_<port> routes them
// by Host (routes_sidecar.go adds `*.<service>` domains), and TLS ports keep
// the SNI listener of VIP-less services. made holds the listener names built
// so far: a pod in two headless services gets the first service's listener.
func headlessListeners(snap *model.Snapshot, svc *model.Service, scope *l4Scope, made map[string]bool) []*listenerv3.Listener {
	var out []*listenerv3.Listener
	eps := snap.Endpoints(svc.Hostname)
	if len(eps) == 0 {
		return nil
	}
	vss := l4VirtualServices(snap, svc.Hostname)
	if l4DependsOnProxy(vss) != (scope != nil) {
		return nil
	}
	for _, p := range svc.Ports {
		if p.Protocol.IsHTTP() || p.Protocol.IsTLS() {
			continue
		}
		for _, ep := range eps {
			name := OutboundTCPListenerName(ep.Address, p.Port)
			if made[name] {
				continue
			}
			made[name] = true
			l := &listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(ep.Address, p.Port),
				BindToPort:       boolv(false),
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
				FilterChains:     tcpFilterChains(snap, svc, p, vss, scope),
			}
			if p.Protocol.IsSniffed() {
				sniffOutbound(snap, l, p.Port)
			}
			out = append(out, l)
		}
	}
	return out
}
