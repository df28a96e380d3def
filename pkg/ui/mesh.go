package ui

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Mesh is /ui/api/mesh: the services, the routes between them, and what
// applies to each workload, built from /debug/configz and the config errors
// of /debug/push_status. SVG is the graph, drawn here so the page needs no
// layout code.
type Mesh struct {
	Version  uint64     `json:"version"`
	Services []*Service `json:"services"`
	Entries  []string   `json:"entries"` // gateways and "mesh": where routes start
	Routes   []*Route   `json:"routes"`
	// Errors are the config errors of objects the graph has no place for.
	Errors []string `json:"errors,omitempty"`
	SVG    string   `json:"svg"`
}

// Service is a Kubernetes Service (or a host no Service backs, External).
type Service struct {
	Key       string      `json:"key"` // namespace/name
	Host      string      `json:"host"`
	Ports     []string    `json:"ports,omitempty"`
	Subsets   []string    `json:"subsets,omitempty"`
	Workloads []*Workload `json:"workloads,omitempty"`
	External  bool        `json:"external,omitempty"`
	Errors    []string    `json:"errors,omitempty"`
}

// Workload is a Pod behind a Service, with the policies that apply to it.
type Workload struct {
	Pod      string   `json:"pod"`
	Version  string   `json:"version,omitempty"`
	MTLS     string   `json:"mtls"`      // STRICT, PERMISSIVE, DISABLE
	MTLSFrom string   `json:"mtls_from"` // the PeerAuthentication, or "default"
	Policies []string `json:"authorization_policies,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// Route is one http rule of a VirtualService.
type Route struct {
	VirtualService string   `json:"virtual_service"` // namespace/name
	Rule           string   `json:"rule"`            // its name, else its index
	From           []string `json:"from"`            // gateways and/or "mesh"
	Hosts          []string `json:"hosts"`
	Match          string   `json:"match,omitempty"`
	To             []Dest   `json:"to,omitempty"`
	Fault          string   `json:"fault,omitempty"`
	Mirror         string   `json:"mirror,omitempty"`
	Redirect       string   `json:"redirect,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

// Dest is a weighted destination of a route.
type Dest struct {
	Service string `json:"service"` // Service key, or the host for external ones
	Subset  string `json:"subset,omitempty"`
	Port    int    `json:"port,omitempty"`
	Weight  int    `json:"weight"` // percent
}

func (h *handler) serveMesh(w http.ResponseWriter, _ *http.Request) {
	m, err := h.mesh()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, m)
}

// Just enough of the Kubernetes and Istio objects, as /debug/configz writes them.
type (
	meta struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	}
	selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	destination struct {
		Host   string `json:"host"`
		Subset string `json:"subset"`
		Port   struct {
			Number int `json:"number"`
		} `json:"port"`
	}
	stringMatch map[string]string // exact/prefix/regex
	configz     struct {
		Version uint64 `json:"version"`
		Objects struct {
			Service map[string]struct {
				Metadata meta `json:"metadata"`
				Spec     struct {
					Selector map[string]string `json:"selector"`
					Ports    []struct {
						Name string `json:"name"`
						Port int    `json:"port"`
					} `json:"ports"`
				} `json:"spec"`
			} `json:"Service"`
			Pod map[string]struct {
				Metadata meta `json:"metadata"`
			} `json:"Pod"`
			VirtualService map[string]struct {
				Metadata meta `json:"metadata"`
				Spec     struct {
					Hosts    []string `json:"hosts"`
					Gateways []string `json:"gateways"`
					HTTP     []struct {
						Name  string `json:"name"`
						Match []struct {
							URI     stringMatch            `json:"uri"`
							Headers map[string]stringMatch `json:"headers"`
						} `json:"match"`
						Route []struct {
							Destination destination `json:"destination"`
							Weight      int         `json:"weight"`
						} `json:"route"`
						Fault *struct {
							Delay *struct {
								FixedDelay string `json:"fixedDelay"`
								Percentage *struct {
									Value float64 `json:"value"`
								} `json:"percentage"`
							} `json:"delay"`
							Abort *struct {
								HTTPStatus int `json:"httpStatus"`
								Percentage *struct {
									Value float64 `json:"value"`
								} `json:"percentage"`
							} `json:"abort"`
						} `json:"fault"`
						Mirror           *destination `json:"mirror"`
						MirrorPercentage *struct {
							Value float64 `json:"value"`
						} `json:"mirrorPercentage"`
						Redirect *struct {
							URI       string `json:"uri"`
							Authority string `json:"authority"`
						} `json:"redirect"`
					} `json:"http"`
				} `json:"spec"`
			} `json:"VirtualService"`
			DestinationRule map[string]struct {
				Metadata meta `json:"metadata"`
				Spec     struct {
					Host    string `json:"host"`
					Subsets []struct {
						Name string `json:"name"`
					} `json:"subsets"`
				} `json:"spec"`
			} `json:"DestinationRule"`
			PeerAuthentication map[string]struct {
				Metadata meta `json:"metadata"`
				Spec     struct {
					Selector *selector `json:"selector"`
					MTLS     *struct {
						Mode string `json:"mode"`
					} `json:"mtls"`
				} `json:"spec"`
			} `json:"PeerAuthentication"`
			AuthorizationPolicy map[string]struct {
				Metadata meta `json:"metadata"`
				Spec     struct {
					Selector *selector `json:"selector"`
					Action   string    `json:"action"`
				} `json:"spec"`
			} `json:"AuthorizationPolicy"`
		} `json:"objects"`
	}
	pushStatus struct {
		ConfigErrorList []struct {
			Level     string `json:"level"`
			Code      string `json:"code"`
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Field     string `json:"field"`
			Message   string `json:"message"`
		} `json:"config_error_list"`
	}
)

// rootNamespace is where mesh-wide policies live (Istio's default).
const rootNamespace = "istio-system"

func (h *handler) mesh() (*Mesh, error) {
	var cz configz
	if err := h.getDebug("/debug/configz", &cz); err != nil {
		return nil, err
	}
	var ps pushStatus
	if err := h.getDebug("/debug/push_status", &ps); err != nil {
		return nil, err
	}
	errs := map[string][]string{} // "Kind ns/name" -> messages
	for _, e := range ps.ConfigErrorList {
		key := e.Kind + " " + e.Namespace + "/" + e.Name
		msg := e.Level + " " + e.Code + ": " + e.Message
		if e.Field != "" {
			msg += " (" + e.Field + ")"
		}
		errs[key] = append(errs[key], msg)
	}
	used := map[string]bool{}
	take := func(key string) []string {
		used[key] = true
		return errs[key]
	}

	m := &Mesh{Version: cz.Version}
	byHost := map[string]*Service{}
	for key, s := range cz.Objects.Service {
		svc := &Service{Key: key, Host: s.Metadata.Name + "." + s.Metadata.Namespace + ".svc.cluster.local",
			Errors: take("Service " + key)}
		for _, p := range s.Spec.Ports {
			svc.Ports = append(svc.Ports, fmt.Sprintf("%d/%s", p.Port, p.Name))
		}
		for pkey, p := range cz.Objects.Pod {
			if p.Metadata.Namespace != s.Metadata.Namespace || len(s.Spec.Selector) == 0 || !selects(s.Spec.Selector, p.Metadata.Labels) {
				continue
			}
			wl := &Workload{Pod: p.Metadata.Name, Version: p.Metadata.Labels["version"], Errors: take("Pod " + pkey)}
			wl.MTLS, wl.MTLSFrom = "PERMISSIVE", "default"
			best := 0 // 1 mesh-wide, 2 namespace, 3 workload
			for akey, pa := range cz.Objects.PeerAuthentication {
				rank := 0
				switch {
				case pa.Metadata.Namespace == p.Metadata.Namespace && pa.Spec.Selector != nil && len(pa.Spec.Selector.MatchLabels) > 0:
					if selects(pa.Spec.Selector.MatchLabels, p.Metadata.Labels) {
						rank = 3
					}
				case pa.Metadata.Namespace == p.Metadata.Namespace:
					rank = 2
				case pa.Metadata.Namespace == rootNamespace && (pa.Spec.Selector == nil || len(pa.Spec.Selector.MatchLabels) == 0):
					rank = 1
				}
				if rank > best && pa.Spec.MTLS != nil && pa.Spec.MTLS.Mode != "" && pa.Spec.MTLS.Mode != "UNSET" {
					best, wl.MTLS, wl.MTLSFrom = rank, pa.Spec.MTLS.Mode, "PeerAuthentication "+akey
					wl.Errors = append(wl.Errors, take("PeerAuthentication "+akey)...)
				}
			}
			for akey, ap := range cz.Objects.AuthorizationPolicy {
				applies := (ap.Metadata.Namespace == p.Metadata.Namespace || ap.Metadata.Namespace == rootNamespace) &&
					(ap.Spec.Selector == nil || selects(ap.Spec.Selector.MatchLabels, p.Metadata.Labels))
				if !applies {
					continue
				}
				action := ap.Spec.Action
				if action == "" {
					action = "ALLOW"
				}
				wl.Policies = append(wl.Policies, akey+" ("+action+")")
				for _, e := range take("AuthorizationPolicy " + akey) {
					wl.Errors = append(wl.Errors, akey+": "+e)
				}
			}
			sort.Strings(wl.Policies)
			svc.Workloads = append(svc.Workloads, wl)
		}
		sort.Slice(svc.Workloads, func(i, j int) bool { return svc.Workloads[i].Pod < svc.Workloads[j].Pod })
		m.Services = append(m.Services, svc)
		byHost[svc.Host] = svc
	}
	for key, dr := range cz.Objects.DestinationRule {
		svc := byHost[fqdn(dr.Spec.Host, dr.Metadata.Namespace)]
		if svc == nil {
			continue
		}
		for _, s := range dr.Spec.Subsets {
			svc.Subsets = append(svc.Subsets, s.Name)
		}
		for _, e := range take("DestinationRule " + key) {
			svc.Errors = append(svc.Errors, "DestinationRule "+key+": "+e)
		}
	}

	entries := map[string]bool{}
	vsKeys := sortedKeys(cz.Objects.VirtualService)
	for _, key := range vsKeys {
		vs := cz.Objects.VirtualService[key]
		from := []string{}
		for _, g := range vs.Spec.Gateways {
			if g != "mesh" && !strings.Contains(g, "/") {
				g = vs.Metadata.Namespace + "/" + g
			}
			from = append(from, g)
		}
		if len(from) == 0 {
			from = []string{"mesh"}
		}
		for _, f := range from {
			entries[f] = true
		}
		vsErrs := take("VirtualService " + key)
		for i, rule := range vs.Spec.HTTP {
			r := &Route{VirtualService: key, Rule: rule.Name, From: from, Hosts: vs.Spec.Hosts}
			if r.Rule == "" {
				r.Rule = fmt.Sprintf("http[%d]", i)
			}
			if i == 0 {
				r.Errors = vsErrs
			}
			var ms []string
			for _, mt := range rule.Match {
				var parts []string
				for k, v := range mt.URI {
					parts = append(parts, "uri "+k+" "+v)
				}
				for hn, hm := range mt.Headers {
					for k, v := range hm {
						parts = append(parts, hn+" "+k+" "+v)
					}
				}
				sort.Strings(parts)
				ms = append(ms, strings.Join(parts, " & "))
			}
			r.Match = strings.Join(ms, " | ")
			total := 0
			for _, d := range rule.Route {
				total += d.Weight
			}
			for _, d := range rule.Route {
				w := d.Weight
				if total == 0 {
					w = 100 / len(rule.Route)
				}
				r.To = append(r.To, Dest{Service: serviceKey(byHost, d.Destination.Host, vs.Metadata.Namespace, m),
					Subset: d.Destination.Subset, Port: d.Destination.Port.Number, Weight: w})
			}
			if f := rule.Fault; f != nil {
				var fs []string
				if f.Delay != nil {
					fs = append(fs, fmt.Sprintf("delay %s%s", f.Delay.FixedDelay, pct(f.Delay.Percentage)))
				}
				if f.Abort != nil {
					fs = append(fs, fmt.Sprintf("abort %d%s", f.Abort.HTTPStatus, pct(f.Abort.Percentage)))
				}
				r.Fault = strings.Join(fs, ", ")
			}
			if mr := rule.Mirror; mr != nil {
				r.Mirror = serviceKey(byHost, mr.Host, vs.Metadata.Namespace, m)
				if mr.Subset != "" {
					r.Mirror += " " + mr.Subset
				}
				r.Mirror += pct(rule.MirrorPercentage)
			}
			if rd := rule.Redirect; rd != nil {
				r.Redirect = strings.TrimSpace(rd.Authority + " " + rd.URI)
			}
			m.Routes = append(m.Routes, r)
		}
		if len(vs.Spec.HTTP) == 0 && len(vsErrs) > 0 {
			m.Errors = append(m.Errors, prefixed("VirtualService "+key, vsErrs)...)
		}
	}
	for e := range entries {
		m.Entries = append(m.Entries, e)
	}
	sort.Strings(m.Entries)
	sort.Slice(m.Services, func(i, j int) bool { return m.Services[i].Key < m.Services[j].Key })
	for _, key := range sortedKeys(errs) {
		if !used[key] {
			m.Errors = append(m.Errors, prefixed(key, errs[key])...)
		}
	}
	m.SVG = drawMesh(m)
	return m, nil
}

func prefixed(p string, msgs []string) []string {
	out := make([]string, len(msgs))
	for i, s := range msgs {
		out[i] = p + ": " + s
	}
	return out
}

func pct(p *struct {
	Value float64 `json:"value"`
}) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(" (%g%%)", p.Value)
}

// fqdn expands a VirtualService or DestinationRule host as Istio does: a
// short name is a Service in the object's namespace.
func fqdn(host, ns string) string {
	switch strings.Count(host, ".") {
	case 0:
		return host + "." + ns + ".svc.cluster.local"
	case 1:
		return host + ".svc.cluster.local"
	}
	return host
}

// serviceKey names a destination host's Service, adding an external node for
// a host no Service backs.
func serviceKey(byHost map[string]*Service, host, ns string, m *Mesh) string {
	f := fqdn(host, ns)
	if s := byHost[f]; s != nil {
		return s.Key
	}
	s := &Service{Key: host, Host: host, External: true}
	byHost[f] = s
	m.Services = append(m.Services, s)
	return s.Key
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
