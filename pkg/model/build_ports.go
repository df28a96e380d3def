package model

import "fmt"

// crossCheckPorts reports TLS ports of services without a cluster IP that share
// a port number with an HTTP service port. Such TLS ports are routed by SNI on
// the wildcard listener `0.0.0.0_<port>`, which the HTTP port already owns: the
// HTTP port keeps it and the TLS service's traffic on that port is not routed
// by the mesh (it passes through, or is refused under REGISTRY_ONLY).
func (s *Snapshot) crossCheckPorts() {
	httpPorts := map[uint32]*Service{}
	for _, svc := range s.serviceList {
		for _, p := range svc.Ports {
			if p.Protocol.IsHTTP() && httpPorts[p.Port] == nil {
				httpPorts[p.Port] = svc
			}
		}
	}
	for _, svc := range s.serviceList {
		if svc.ClusterIP != "" {
			continue
		}
		for _, p := range svc.Ports {
			if other := httpPorts[p.Port]; p.Protocol.IsTLS() && other != nil {
				s.addError(ConfigError{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name, Field: fmt.Sprintf("spec.ports[%s]", p.Name),
					Code: "PortProtocolConflict", Warning: true,
					Message: fmt.Sprintf("TLS port %d of this headless service is routed on 0.0.0.0:%d, which HTTP port %d of service %s/%s already uses; "+
						"the HTTP port wins and TLS traffic to this service on that port bypasses the mesh routes", p.Port, p.Port, p.Port, other.Namespace, other.Name)})
			}
		}
	}
}
