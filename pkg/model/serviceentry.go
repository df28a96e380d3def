package model

import (
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// AnnotationExportTo is Istio's annotation restricting a Kubernetes Service's visibility.
const AnnotationExportTo = "networking.istio.io/exportTo"

// buildServiceEntries turns every host of every valid ServiceEntry into a
// Service with its endpoints. A host already defined (by a Kubernetes Service or
// an older ServiceEntry) keeps its first definition, as in Istio.
func (s *Snapshot) buildServiceEntries(in *Inputs) {
	added := false
	for _, se := range byCreation(in.ServiceEntries) {
		errs := ValidateServiceEntry(se)
		s.Errors = append(s.Errors, errs...)
		if hasErrors(errs) {
			continue
		}
		spec := &se.Spec
		for _, host := range spec.GetHosts() {
			if prev, ok := s.services[host]; ok {
				from := "Service " + prev.Namespace + "/" + prev.Name
				if prev.FromServiceEntry != "" {
					from = "ServiceEntry " + prev.FromServiceEntry
				}
				s.addError(ConfigError{Kind: "ServiceEntry", Namespace: se.Namespace, Name: se.Name, Field: "spec.hosts",
					Code: "ConflictingServiceEntry", Warning: true, Message: fmt.Sprintf("host %s is already defined by %s; this definition is ignored", host, from)})
				continue
			}
			svc := &Service{
				Hostname:         host,
				Name:             host,
				Namespace:        se.Namespace,
				MeshExternal:     spec.GetLocation() == networkingapi.ServiceEntry_MESH_EXTERNAL,
				ExportTo:         exportTo(spec.GetExportTo(), se.Namespace),
				FromServiceEntry: se.Namespace + "/" + se.Name,
				Selector:         spec.GetWorkloadSelector().GetLabels(),
				SubjectAltNames:  spec.GetSubjectAltNames(),
			}
			switch spec.GetResolution() {
			case networkingapi.ServiceEntry_DNS:
				svc.Resolution = ResolutionDNS
			case networkingapi.ServiceEntry_DNS_ROUND_ROBIN:
				svc.Resolution = ResolutionDNSRoundRobin
			case networkingapi.ServiceEntry_NONE:
				svc.Resolution = ResolutionPassthrough
			}
			if addrs := spec.GetAddresses(); len(addrs) > 0 && IsIP(addrs[0]) {
				svc.ClusterIP = addrs[0]
			}
			for _, p := range spec.GetPorts() {
				svc.Ports = append(svc.Ports, &Port{Name: p.GetName(), Port: p.GetNumber(), Protocol: ParseProtocol(p.GetProtocol()), TargetPort: p.GetTargetPort()})
			}
			sort.Slice(svc.Ports, func(i, j int) bool { return svc.Ports[i].Port < svc.Ports[j].Port })
			s.services[host] = svc
			s.endpoints[host] = serviceEntryEndpoints(svc, spec)
			added = true
		}
	}
	if added {
		s.serviceList = s.serviceList[:0]
		for _, h := range sortedKeys(s.services) {
			s.serviceList = append(s.serviceList, s.services[h])
		}
	}
}

// serviceEntryEndpoints lists the inline endpoints; for DNS resolution without
// endpoints Envoy resolves the host itself, as in Istio.
func serviceEntryEndpoints(svc *Service, spec *networkingapi.ServiceEntry) []*Endpoint {
	var out []*Endpoint
	for _, we := range spec.GetEndpoints() {
		ep := &Endpoint{Address: we.GetAddress(), Labels: we.GetLabels(), ServiceAccount: we.GetServiceAccount(), Ports: map[string]uint32{}, Namespace: svc.Namespace,
			Locality: parsedLocality(we.GetLocality())}
		for _, p := range svc.Ports {
			switch {
			case we.GetPorts()[p.Name] != 0:
				ep.Ports[p.Name] = we.GetPorts()[p.Name]
			case p.TargetPort != 0:
				ep.Ports[p.Name] = p.TargetPort
			default:
				ep.Ports[p.Name] = p.Port
			}
		}
		out = append(out, ep)
	}
	if len(out) == 0 && (svc.Resolution == ResolutionDNS || svc.Resolution == ResolutionDNSRoundRobin) && !strings.HasPrefix(svc.Hostname, "*") {
		ep := &Endpoint{Address: svc.Hostname, Ports: map[string]uint32{}, Namespace: svc.Namespace}
		for _, p := range svc.Ports {
			ep.Ports[p.Name] = p.Port
			if p.TargetPort != 0 {
				ep.Ports[p.Name] = p.TargetPort
			}
		}
		out = append(out, ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// exportTo resolves an exportTo list of an object in namespace ns: nil means
// everyone (also for an empty list), "." is ns, "~" nobody.
func exportTo(list []string, ns string) map[string]bool {
	if len(list) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, e := range list {
		switch e {
		case "*":
			return nil
		case ".":
			out[ns] = true
		case "~":
		default:
			out[e] = true
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ValidateServiceEntry returns the problems of one ServiceEntry on its own.
func ValidateServiceEntry(se *networking.ServiceEntry) []ConfigError {
	v := validator{kind: "ServiceEntry", ns: se.Namespace, name: se.Name}
	spec := &se.Spec
	if len(spec.GetHosts()) == 0 {
		v.fail("spec.hosts", "MissingHosts", "at least one host is required")
	}
	for i, h := range spec.GetHosts() {
		if h == "" || h == "*" {
			v.fail(fmt.Sprintf("spec.hosts[%d]", i), "InvalidHost", fmt.Sprintf("host %q is not allowed", h))
		}
		if strings.HasPrefix(h, "*") && spec.GetResolution() != networkingapi.ServiceEntry_NONE {
			v.fail(fmt.Sprintf("spec.hosts[%d]", i), "InvalidHost", "wildcard hosts need resolution NONE")
		}
	}
	if len(spec.GetPorts()) == 0 {
		v.fail("spec.ports", "MissingPorts", "at least one port is required")
	}
	names := map[string]bool{}
	for i, p := range spec.GetPorts() {
		f := fmt.Sprintf("spec.ports[%d]", i)
		if p.GetNumber() == 0 || p.GetNumber() > 65535 {
			v.fail(f+".number", "InvalidPort", "port number must be 1-65535")
		}
		if p.GetName() == "" {
			v.fail(f+".name", "MissingPortName", "port name is required")
		} else if names[p.GetName()] {
			v.fail(f+".name", "DuplicatePortName", fmt.Sprintf("port name %q is used twice", p.GetName()))
		}
		names[p.GetName()] = true
	}
	for i, a := range spec.GetAddresses() {
		if !IsIP(a) && !strings.Contains(a, "/") {
			v.fail(fmt.Sprintf("spec.addresses[%d]", i), "InvalidAddress", fmt.Sprintf("%q is not an IP or CIDR", a))
		}
	}
	if spec.GetResolution() == networkingapi.ServiceEntry_STATIC && len(spec.GetEndpoints()) == 0 && spec.GetWorkloadSelector() == nil {
		v.fail("spec.endpoints", "MissingEndpoints", "resolution STATIC needs endpoints or a workloadSelector")
	}
	for i, we := range spec.GetEndpoints() {
		f := fmt.Sprintf("spec.endpoints[%d]", i)
		if we.GetAddress() == "" {
			v.fail(f+".address", "MissingAddress", "endpoint address is required")
		} else if spec.GetResolution() == networkingapi.ServiceEntry_STATIC && !IsIP(we.GetAddress()) && !strings.HasPrefix(we.GetAddress(), "unix://") {
			v.fail(f+".address", "InvalidAddress", "resolution STATIC needs IP addresses; use DNS for hostnames")
		}
		for name := range we.GetPorts() {
			if !names[name] {
				v.fail(f+".ports", "UnknownPortName", fmt.Sprintf("port name %q is not a port of the ServiceEntry", name))
			}
		}
	}
	v.serviceEntryPorts(spec) // envoy_limits.go
	return v.errs
}
