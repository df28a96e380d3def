package model

import (
	"encoding/binary"
	"hash/fnv"
	"sort"
)

// Workload identities as the mesh's certificates carry them, for clients that
// check who answers (secure naming): an Istio mTLS client accepts a server
// certificate only if it names one of the service's service accounts.

// SpiffeID is the URI SAN of a workload certificate.
func SpiffeID(trustDomain, ns, sa string) string {
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ServiceIdentities returns the SPIFFE IDs of the workloads behind a service,
// sorted: the service accounts of its pods (Kubernetes gives a pod without
// serviceAccountName the "default" account) and of ServiceEntry endpoints that
// name one, plus a ServiceEntry's subjectAltNames (as istiod adds them to the
// service's accounts). Endpoints of unknown workloads add nothing.
func (s *Snapshot) ServiceIdentities(hostname string) []string { return s.identities[hostname] }

// buildServiceIdentities runs after endpoints are known. The identities end up
// in cluster config (SAN checks), so they count towards ConfigHash: a new
// service account behind a service is a config change, a new pod of a known
// one stays endpoint-only.
func (s *Snapshot) buildServiceIdentities() uint64 {
	s.identities = map[string][]string{}
	h := fnv.New64a()
	td := s.Mesh.GetTrustDomain()
	for _, svc := range s.serviceList {
		ids := serviceIdentities(td, svc, s.endpoints[svc.Hostname])
		if len(ids) == 0 {
			continue
		}
		s.identities[svc.Hostname] = ids
		_, _ = h.Write([]byte(svc.Hostname))
		for _, id := range ids {
			_, _ = h.Write([]byte{0})
			_, _ = h.Write([]byte(id))
		}
		_, _ = h.Write([]byte{1})
	}
	return h.Sum64()
}

// serviceIdentities are the SPIFFE IDs of a service's endpoints and its
// subjectAltNames, sorted, each once.
func serviceIdentities(td string, svc *Service, eps []*Endpoint) []string {
	seen := map[string]bool{}
	var ids []string
	for _, ep := range eps {
		sa := ep.ServiceAccount
		if sa == "" && ep.PodName != "" {
			sa = "default"
		}
		if sa == "" {
			continue
		}
		id := SpiffeID(td, ep.Namespace, sa)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range svc.SubjectAltNames {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// mixHash folds b into a.
func mixHash(a, b uint64) uint64 {
	h := fnv.New64a()
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], a)
	binary.LittleEndian.PutUint64(buf[8:], b)
	_, _ = h.Write(buf[:])
	return h.Sum64()
}
