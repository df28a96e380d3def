package model

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Addresses and ports become Envoy socket addresses, listener names and
// endpoint lists. The apiserver refuses a Service with clusterIP "garbage"
// or port 99999, but a config directory does not: unparsed, such a value
// made Envoy refuse a whole listener or endpoint set, and an EndpointSlice
// naming a good Service poisoned that Service's endpoints too. So every
// address and port is parsed here, before the model reads it, and what does
// not parse is left out alone: a Service or Pod whole, an EndpointSlice only
// the address or port entry that is wrong.

// checkAddresses returns the inputs the rest of Build reads: in itself when
// everything parses, else a copy without what does not (the objects in in
// are never changed: a source may share them with its caches).
func (s *Snapshot) checkAddresses(in *Inputs) *Inputs {
	services := keep(in.Services, s.serviceAddressesOK)
	pods := keep(in.Pods, s.podAddressesOK)
	var slices []*discoveryv1.EndpointSlice // nil: no slice changed
	for i, es := range in.EndpointSlices {
		clean := s.cleanEndpointSlice(es)
		if clean != es && slices == nil {
			slices = append(make([]*discoveryv1.EndpointSlice, 0, len(in.EndpointSlices)), in.EndpointSlices[:i]...)
		}
		if slices != nil {
			slices = append(slices, clean)
		}
	}
	if len(services) == len(in.Services) && len(pods) == len(in.Pods) && slices == nil {
		return in
	}
	out := *in
	out.Services, out.Pods = services, pods
	if slices != nil {
		out.EndpointSlices = slices
	}
	return &out
}

// keep returns the elements ok accepts: in itself when it accepts all.
func keep[T any](in []T, ok func(T) bool) []T {
	for i, o := range in {
		if ok(o) {
			continue
		}
		out := append(make([]T, 0, len(in)-1), in[:i]...)
		for _, o := range in[i+1:] {
			if ok(o) {
				out = append(out, o)
			}
		}
		return out
	}
	return in
}

func validPort(p int32) bool { return p >= 1 && p <= 65535 }

func (s *Snapshot) addressError(kind, ns, name, field, code, msg string) {
	s.addError(ConfigError{Kind: kind, Namespace: ns, Name: name, Field: field, Code: code, Message: msg})
}

// serviceAddressesOK: clusterIP empty, None or an IP; every port and numeric
// targetPort 1-65535.
func (s *Snapshot) serviceAddressesOK(svc *corev1.Service) bool {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return true // no address; externalname.go reads it
	}
	ok := true
	bad := func(field, code, msg string) {
		s.addressError("Service", svc.Namespace, svc.Name, field, code, msg+"; the Service is skipped")
		ok = false
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		if _, err := netip.ParseAddr(ip); err != nil {
			bad("spec.clusterIP", "InvalidAddress", fmt.Sprintf("%q is not an IP address (or None)", ip))
		}
	}
	for i, p := range svc.Spec.Ports {
		if !validPort(p.Port) {
			bad(fmt.Sprintf("spec.ports[%d].port", i), "InvalidPort", fmt.Sprintf("port %d is not in 1-65535", p.Port))
		}
		if t := p.TargetPort; t.StrVal == "" && t.IntVal != 0 && !validPort(t.IntVal) {
			bad(fmt.Sprintf("spec.ports[%d].targetPort", i), "InvalidPort", fmt.Sprintf("targetPort %d is not in 1-65535", t.IntVal))
		}
	}
	return ok
}

// podAddressesOK: status.podIP(s) IPs and container ports 1-65535, as the
// kubelet would report them.
func (s *Snapshot) podAddressesOK(p *corev1.Pod) bool {
	ok := true
	bad := func(field, code, msg string) {
		s.addressError("Pod", p.Namespace, p.Name, field, code, msg+"; the Pod is not used as an endpoint or workload")
		ok = false
	}
	if ip := p.Status.PodIP; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			bad("status.podIP", "InvalidAddress", fmt.Sprintf("%q is not an IP address", ip))
		}
	}
	for i, pip := range p.Status.PodIPs {
		if _, err := netip.ParseAddr(pip.IP); err != nil {
			bad(fmt.Sprintf("status.podIPs[%d].ip", i), "InvalidAddress", fmt.Sprintf("%q is not an IP address", pip.IP))
		}
	}
	for i, c := range p.Spec.Containers {
		for j, cp := range c.Ports {
			if !validPort(cp.ContainerPort) {
				bad(fmt.Sprintf("spec.containers[%d].ports[%d].containerPort", i, j), "InvalidPort", fmt.Sprintf("port %d is not in 1-65535", cp.ContainerPort))
			}
		}
	}
	return ok
}

// cleanEndpointSlice drops the port entries and endpoint addresses of an
// EndpointSlice that do not parse (an address must be of the slice's
// addressType); the rest of the slice still counts. Returns es itself when
// all is well.
func (s *Snapshot) cleanEndpointSlice(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
		return es // FQDN slices are not read
	}
	if sliceAddressesValid(es) {
		return es // the usual case: checked without building anything
	}
	bad := func(field, code, msg string) {
		s.addressError("EndpointSlice", es.Namespace, es.Name, field, code, msg)
	}
	var clean *discoveryv1.EndpointSlice
	edit := func() *discoveryv1.EndpointSlice {
		if clean == nil {
			clean = es.DeepCopy()
			clean.Ports, clean.Endpoints = nil, nil
		}
		return clean
	}
	var ports []discoveryv1.EndpointPort
	for i, p := range es.Ports {
		if p.Port != nil && !validPort(*p.Port) {
			bad(fmt.Sprintf("ports[%d].port", i), "InvalidEndpointPort", fmt.Sprintf("port %d is not in 1-65535; this port is left out of the slice", *p.Port))
			edit()
			continue
		}
		ports = append(ports, p)
	}
	var endpoints []discoveryv1.Endpoint
	for i, ep := range es.Endpoints {
		var addrs []string
		for j, a := range ep.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || ip.Is4() != (es.AddressType == discoveryv1.AddressTypeIPv4) {
				bad(fmt.Sprintf("endpoints[%d].addresses[%d]", i, j), "InvalidEndpointAddress",
					fmt.Sprintf("%q is not an %s address; this endpoint address is left out, the rest of the slice is used", a, es.AddressType))
				edit()
				continue
			}
			addrs = append(addrs, a)
		}
		if len(addrs) == 0 && len(ep.Addresses) > 0 {
			continue
		}
		ep.Addresses = addrs
		endpoints = append(endpoints, ep)
	}
	if clean == nil {
		return es
	}
	clean.Ports, clean.Endpoints = ports, endpoints
	return clean
}

// sliceAddressesValid reports whether every port and address of es parses, so
// cleanEndpointSlice has nothing to leave out. It allocates nothing: it runs
// for every slice on every build.
func sliceAddressesValid(es *discoveryv1.EndpointSlice) bool {
	for _, p := range es.Ports {
		if p.Port != nil && !validPort(*p.Port) {
			return false
		}
	}
	for _, ep := range es.Endpoints {
		for _, a := range ep.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || ip.Is4() != (es.AddressType == discoveryv1.AddressTypeIPv4) {
				return false
			}
		}
	}
	return true
}
