package translate

import (
	"fmt"
	"strings"
)

// Names Envoy resources carry, fixed by Istio (DESIGN.md §2) so dashboards,
// istioctl habits and scripts keep working.
const (
	BlackHoleCluster          = "BlackHoleCluster"
	PassthroughCluster        = "PassthroughCluster"
	InboundPassthroughCluster = "InboundPassthroughCluster"
	VirtualOutboundListener   = "virtualOutbound"
	VirtualInboundListener    = "virtualInbound"

	VirtualOutboundPort = 15001
	VirtualInboundPort  = 15006

	// inboundBindAddress is the source address Envoy uses towards the local app, as
	// Istio does, so capture rules can tell Envoy's own traffic from the app's.
	inboundBindAddress = "127.0.0.6"
)

// OutboundClusterName is `outbound|<port>|<subset>|<fqdn>`.
func OutboundClusterName(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

// InboundClusterName is `inbound|<port>||`.
func InboundClusterName(port uint32) string { return fmt.Sprintf("inbound|%d||", port) }

// ParseOutboundClusterName splits an outbound cluster name; ok is false for any
// other cluster.
func ParseOutboundClusterName(name string) (port, subset, host string, ok bool) {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 || parts[0] != "outbound" {
		return "", "", "", false
	}
	return parts[1], parts[2], parts[3], true
}

// SidecarOutboundRouteName is the RDS name of a sidecar's outbound HTTP port.
func SidecarOutboundRouteName(port uint32) string { return fmt.Sprintf("%d", port) }

// GatewayHTTPRouteName is the RDS name of a gateway's plain-HTTP port.
func GatewayHTTPRouteName(port uint32) string { return fmt.Sprintf("http.%d", port) }

// OutboundHTTPListenerName is `0.0.0.0_<port>`; gateway listeners use the same form.
func OutboundHTTPListenerName(port uint32) string { return fmt.Sprintf("0.0.0.0_%d", port) }

// OutboundTCPListenerName is `<vip>_<port>`.
func OutboundTCPListenerName(vip string, port uint32) string { return fmt.Sprintf("%s_%d", vip, port) }
