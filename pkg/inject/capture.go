package inject

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Capture describes the traffic capture of a pod as Istio's istio-iptables
// does it in its default REDIRECT mode: outbound TCP to the proxy's 15001,
// inbound TCP to 15006, the proxy's own traffic (uid/gid 1337) let through.
// The field comments name istio-iptables' flags; `mizzen capture` takes the
// same ones, so the init container reads like Istio's.
type Capture struct {
	ProxyPort          int    // -p: outbound capture port (15001)
	InboundCapturePort int    // -z: inbound capture port (15006)
	ProxyUID           string // -u: the proxy's uid (1337)
	ProxyGID           string // -g: the proxy's gid (1337)
	// OutboundIPRangesInclude (-i) is "*" (all), "" (none) or CIDRs.
	OutboundIPRangesInclude string
	// OutboundIPRangesExclude (-x) are CIDRs never captured.
	OutboundIPRangesExclude string
	// InboundPorts (-b) is "*" (all), "" (none) or ports.
	InboundPorts string
	// InboundPortsExclude (-d) are ports never captured inbound (with "*").
	InboundPortsExclude string
	// OutboundPortsExclude (-o) are destination ports never captured.
	OutboundPortsExclude string
}

// DefaultCapture is istio-iptables' default.
func DefaultCapture() Capture {
	return Capture{ProxyPort: 15001, InboundCapturePort: 15006, ProxyUID: strconv.Itoa(ProxyUID), ProxyGID: strconv.Itoa(ProxyGID),
		OutboundIPRangesInclude: "*", InboundPorts: "*"}
}

// Ports never captured: 15008 is HBONE (Istio keeps it out in every mode), 22
// keeps ssh into a node-like pod working, as istio-iptables does.
const (
	hbonePort = 15008
	sshPort   = 22
)

// Rules renders the nat table for iptables-restore --noflush. With the
// defaults and InboundPortsExclude "15090,15021,15020" they are istio-iptables'
// rules line for line (see e2e/rig.CaptureRules, the same rules the rig's
// hand-made sidecars use).
func (c Capture) Rules() (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	lines := []string{
		"*nat",
		":ISTIO_INBOUND - [0:0]",
		":ISTIO_REDIRECT - [0:0]",
		":ISTIO_IN_REDIRECT - [0:0]",
		":ISTIO_OUTPUT - [0:0]",
		fmt.Sprintf("-A ISTIO_INBOUND -p tcp --dport %d -j RETURN", hbonePort),
		fmt.Sprintf("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports %d", c.ProxyPort),
		fmt.Sprintf("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports %d", c.InboundCapturePort),
	}
	switch strings.TrimSpace(c.InboundPorts) {
	case "":
	case "*":
		lines = append(lines, "-A PREROUTING -p tcp -j ISTIO_INBOUND")
		excluded := append([]int{sshPort}, mustPorts(c.InboundPortsExclude)...)
		seen := map[int]bool{}
		for _, p := range excluded {
			if !seen[p] && p != hbonePort {
				seen[p] = true
				lines = append(lines, fmt.Sprintf("-A ISTIO_INBOUND -p tcp --dport %d -j RETURN", p))
			}
		}
		lines = append(lines, "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
	default:
		lines = append(lines, "-A PREROUTING -p tcp -j ISTIO_INBOUND")
		for _, p := range mustPorts(c.InboundPorts) {
			lines = append(lines, fmt.Sprintf("-A ISTIO_INBOUND -p tcp --dport %d -j ISTIO_IN_REDIRECT", p))
		}
	}
	lines = append(lines, "-A OUTPUT -p tcp -j ISTIO_OUTPUT")
	for _, p := range mustPorts(c.OutboundPortsExclude) {
		lines = append(lines, fmt.Sprintf("-A ISTIO_OUTPUT -p tcp --dport %d -j RETURN", p))
	}
	// Envoy's inbound clusters connect to the app from 127.0.0.6: let them by.
	lines = append(lines, "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN")
	for _, owner := range []struct{ match, ids string }{{"--uid-owner", c.ProxyUID}, {"--gid-owner", c.ProxyGID}} {
		for _, id := range splitList(owner.ids) {
			lines = append(lines,
				// The proxy calling its own pod's address over lo is inbound
				// traffic for that pod: through 15006, so policies apply.
				fmt.Sprintf("-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport %d -m owner %s %s -j ISTIO_IN_REDIRECT", hbonePort, owner.match, id),
				fmt.Sprintf("-A ISTIO_OUTPUT -o lo -m owner ! %s %s -j RETURN", owner.match, id),
				fmt.Sprintf("-A ISTIO_OUTPUT -m owner %s %s -j RETURN", owner.match, id),
			)
		}
	}
	lines = append(lines, "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN")
	for _, cidr := range splitList(c.OutboundIPRangesExclude) {
		lines = append(lines, fmt.Sprintf("-A ISTIO_OUTPUT -d %s -j RETURN", cidr))
	}
	switch strings.TrimSpace(c.OutboundIPRangesInclude) {
	case "":
	case "*":
		lines = append(lines, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
	default:
		for _, cidr := range splitList(c.OutboundIPRangesInclude) {
			lines = append(lines, fmt.Sprintf("-A ISTIO_OUTPUT -d %s -j ISTIO_REDIRECT", cidr))
		}
	}
	lines = append(lines, "COMMIT")
	return strings.Join(lines, "\n") + "\n", nil
}

func (c Capture) check() error {
	for _, p := range []struct {
		flag string
		port int
	}{{"-p (proxy port)", c.ProxyPort}, {"-z (inbound capture port)", c.InboundCapturePort}} {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("%s: %d is not a port", p.flag, p.port)
		}
	}
	for _, id := range []struct{ flag, ids string }{{"-u (proxy uid)", c.ProxyUID}, {"-g (proxy gid)", c.ProxyGID}} {
		ids := splitList(id.ids)
		if len(ids) == 0 {
			return fmt.Errorf("%s: required", id.flag)
		}
		for _, s := range ids {
			if n, err := strconv.Atoi(s); err != nil || n < 0 {
				return fmt.Errorf("%s: %q is not a numeric id", id.flag, s)
			}
		}
	}
	return checkCapture(c.OutboundIPRangesInclude, c.OutboundIPRangesExclude, c.OutboundPortsExclude, c.InboundPorts, c.InboundPortsExclude)
}

// checkCapture checks the capture settings that pods and the config may set;
// the errors name the annotation each one comes from.
func checkCapture(includeOut, excludeOut, excludeOutPorts, includeIn, excludeIn string) error {
	if err := checkCIDRs(includeOut, true); err != nil {
		return fmt.Errorf("%s: %w", AnnotationIncludeOutboundIPRanges, err)
	}
	if err := checkCIDRs(excludeOut, false); err != nil {
		return fmt.Errorf("%s: %w", AnnotationExcludeOutboundIPRanges, err)
	}
	if _, err := parsePorts(excludeOutPorts); err != nil {
		return fmt.Errorf("%s: %w", AnnotationExcludeOutboundPorts, err)
	}
	if strings.TrimSpace(includeIn) != "*" {
		if _, err := parsePorts(includeIn); err != nil {
			return fmt.Errorf("%s: %w", AnnotationIncludeInboundPorts, err)
		}
	}
	if _, err := parsePorts(excludeIn); err != nil {
		return fmt.Errorf("%s: %w", AnnotationExcludeInboundPorts, err)
	}
	return nil
}

func checkCIDRs(s string, starOK bool) error {
	if starOK && strings.TrimSpace(s) == "*" {
		return nil
	}
	for _, c := range splitList(s) {
		ip, _, err := net.ParseCIDR(c)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR (want e.g. 10.96.0.0/12)", c)
		}
		if ip.To4() == nil {
			return fmt.Errorf("%q: IPv6 ranges are not supported (mizzen's capture is IPv4 only)", c)
		}
	}
	return nil
}

func parsePorts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%q is not a port (1-65535)", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// mustPorts is for lists check has already accepted.
func mustPorts(s string) []int {
	ps, _ := parsePorts(s)
	return ps
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

// joinList merges comma-separated lists, dropping empties and duplicates.
func joinList(lists ...string) string {
	var out []string
	for _, l := range lists {
		for _, f := range splitList(l) {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return strings.Join(out, ",")
}
