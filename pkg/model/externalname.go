package model

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// buildExternalNames reads ExternalName Services as istiod does. One whose
// externalName is a host of the mesh (a Service or ServiceEntry, followed
// through other ExternalNames) is an alias of it: its names reach that
// service, routed by that service's VirtualServices, and it gets no cluster or
// listener of its own. One that names anything else is a DNS service: a
// cluster `outbound|<port>||<its FQDN>` that Envoy resolves to the external
// name, reached by its names over HTTP (there is no VIP to capture TCP on).
// A loop of ExternalNames resolves to nothing, as DNS would (NXDOMAIN).
func (s *Snapshot) buildExternalNames(in *Inputs) {
	target := map[string]string{} // alias FQDN -> externalName
	var names []*corev1.Service
	for _, svc := range in.Services {
		if svc.Spec.Type != corev1.ServiceTypeExternalName || svc.Spec.ExternalName == "" {
			continue
		}
		host := ServiceHostname(svc.Name, svc.Namespace)
		if s.services[host] != nil {
			continue // a Service of another type (or a ServiceEntry) has the name
		}
		target[host] = strings.TrimSuffix(strings.ToLower(svc.Spec.ExternalName), ".")
		names = append(names, svc)
	}
	if len(names) == 0 {
		return
	}
	added := false
	for _, k := range names {
		alias := ServiceHostname(k.Name, k.Namespace)
		t, loop := target[alias], false
		seen := map[string]bool{alias: true}
		for next, ok := target[t]; ok; next, ok = target[t] {
			if seen[t] {
				loop = true
				break
			}
			seen[t] = true
			t = next
		}
		if loop {
			continue
		}
		if concrete := s.services[t]; concrete != nil {
			concrete.Aliases = append(concrete.Aliases, alias)
			sort.Strings(concrete.Aliases)
			continue
		}
		svc := &Service{
			Hostname: alias, Name: k.Name, Namespace: k.Namespace,
			MeshExternal: true, Resolution: ResolutionDNS, ExternalName: t,
			ExportTo: exportTo(splitList(k.Annotations[AnnotationExportTo]), k.Namespace),
		}
		ep := &Endpoint{Address: t, Ports: map[string]uint32{}, Namespace: k.Namespace}
		for _, p := range k.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			svc.Ports = append(svc.Ports, &Port{Name: p.Name, Port: uint32(p.Port), Protocol: PortProtocol(p.Name, p.AppProtocol)})
			ep.Ports[p.Name] = uint32(p.Port)
		}
		if len(svc.Ports) == 0 {
			continue
		}
		sort.Slice(svc.Ports, func(i, j int) bool { return svc.Ports[i].Port < svc.Ports[j].Port })
		s.services[alias] = svc
		s.endpoints[alias] = []*Endpoint{ep}
		added = true
	}
	if added {
		s.serviceList = s.serviceList[:0]
		for _, h := range sortedKeys(s.services) {
			s.serviceList = append(s.serviceList, s.services[h])
		}
	}
}
