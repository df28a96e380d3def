package model

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ProxyType is the first field of an Istio node ID.
type ProxyType string

const (
	SidecarProxy ProxyType = "sidecar"
	RouterProxy  ProxyType = "router"
)

// Proxy is what mizzen knows about one connected Envoy: parsed from its node ID
// and the node metadata keys of DESIGN.md §2. Identity for certificates never
// comes from here; this only selects which config the proxy gets.
type Proxy struct {
	ID        string
	Type      ProxyType
	IP        string
	PodName   string
	Namespace string
	DNSDomain string

	Labels         map[string]string
	ServiceAccount string
	InstanceIPs    []string
	ClusterID      string
	// GatewayBindIP (node metadata MIZZEN_GATEWAY_BIND_IP) makes gateway listeners bind
	// this address instead of 0.0.0.0, so several gateways can share one host's loopback.
	GatewayBindIP string

	// Identity is the SPIFFE ID the proxy's xDS stream proved (set by the xds
	// layer after authenticating it, never from node metadata); empty when
	// it connected without a credential. Only proxies with one get mTLS
	// secrets, so translators give mTLS client config only to them.
	Identity string
	// AdminAddress (node metadata MIZZEN_ADMIN_ADDRESS, "ip:port") is where the
	// proxy's Envoy admin listens, for the stats listener to forward
	// /stats/prometheus to; empty means Istio's 127.0.0.1:15000.
	AdminAddress string
	// IstioVersion (node metadata ISTIO_VERSION) is set by istio-agent, whose
	// bootstrap already defines the stats listener and its clusters.
	IstioVersion string
	// Unprivileged (node metadata UNPRIVILEGED_POD, set by Istio's injection
	// for pods that may not bind ports below 1024): such a gateway gets no
	// listener on a privileged port, as from istiod, instead of an LDS update
	// Envoy rejects whole.
	Unprivileged bool
	// Locality is the Envoy node's own locality (node.locality in its
	// bootstrap, as istio-agent sets it); when empty, the locality of the
	// proxy's pod's node counts (Snapshot.ProxyLocality).
	Locality Locality
}

// AgentSDS reports whether the proxy's workload certificate comes from
// istio-agent (whose bootstrap has the sds-grpc cluster, served by the agent,
// which holds the key) rather than from mizzen over ADS. istio-agent is the
// one to set ISTIO_VERSION.
func (p *Proxy) AgentSDS() bool { return p.IstioVersion != "" }

// Node metadata keys mizzen reads.
const (
	MetaNamespace      = "NAMESPACE"
	MetaLabels         = "LABELS"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	MetaInstanceIPs    = "INSTANCE_IPS"
	MetaClusterID      = "CLUSTER_ID"
	MetaGatewayBindIP  = "MIZZEN_GATEWAY_BIND_IP"
	MetaAdminAddress   = "MIZZEN_ADMIN_ADDRESS"
	MetaIstioVersion   = "ISTIO_VERSION"
	MetaUnprivileged   = "UNPRIVILEGED_POD"
)

// ParseProxy builds a Proxy from an Istio node ID
// (`<sidecar|router>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`) and node metadata.
func ParseProxy(id string, meta map[string]any) (*Proxy, error) {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node ID %q: want 4 fields separated by '~', got %d", id, len(parts))
	}
	p := &Proxy{ID: id, Type: ProxyType(parts[0]), IP: parts[1], DNSDomain: parts[3]}
	if p.Type != SidecarProxy && p.Type != RouterProxy {
		return nil, fmt.Errorf("node ID %q: proxy type %q is neither sidecar nor router", id, parts[0])
	}
	p.PodName = parts[2]
	if i := strings.LastIndex(parts[2], "."); i > 0 {
		p.PodName, p.Namespace = parts[2][:i], parts[2][i+1:]
	}
	if ns, ok := meta[MetaNamespace].(string); ok && ns != "" {
		p.Namespace = ns
	}
	if p.Namespace == "" {
		if i := strings.Index(p.DNSDomain, "."); i > 0 {
			p.Namespace = p.DNSDomain[:i]
		}
	}
	if p.Namespace == "" {
		return nil, fmt.Errorf("node ID %q: no namespace in node ID or metadata", id)
	}
	p.Labels = map[string]string{}
	if labels, ok := meta[MetaLabels].(map[string]any); ok {
		for k, v := range labels {
			if s, ok := v.(string); ok {
				p.Labels[k] = s
			}
		}
	}
	p.ServiceAccount, _ = meta[MetaServiceAccount].(string)
	p.ClusterID, _ = meta[MetaClusterID].(string)
	p.GatewayBindIP, _ = meta[MetaGatewayBindIP].(string)
	p.IstioVersion, _ = meta[MetaIstioVersion].(string)
	if v, _ := meta[MetaUnprivileged].(string); v != "" {
		p.Unprivileged, _ = strconv.ParseBool(v)
	}
	// An address that is not ip:port is ignored (the default applies) rather
	// than refusing the proxy its whole config over a stats detail.
	if a, ok := meta[MetaAdminAddress].(string); ok {
		if host, port, err := net.SplitHostPort(a); err == nil && net.ParseIP(host) != nil {
			if n, err := strconv.ParseUint(port, 10, 16); err == nil && n > 0 {
				p.AdminAddress = a
			}
		}
	}
	switch ips := meta[MetaInstanceIPs].(type) {
	case string:
		for _, ip := range strings.Split(ips, ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				p.InstanceIPs = append(p.InstanceIPs, ip)
			}
		}
	case []any:
		for _, ip := range ips {
			if s, ok := ip.(string); ok {
				p.InstanceIPs = append(p.InstanceIPs, s)
			}
		}
	}
	if len(p.InstanceIPs) == 0 && p.IP != "" {
		p.InstanceIPs = []string{p.IP}
	}
	return p, nil
}

// HasIP reports whether the proxy owns the address.
func (p *Proxy) HasIP(ip string) bool {
	for _, own := range p.InstanceIPs {
		if own == ip {
			return true
		}
	}
	return false
}
