package model

import (
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networkingapi "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DestinationRule checks below the object level: traffic policies (host, port
// and subset level), subset names and labels, exportTo. They follow istiod's
// validation, plus the limits Envoy enforces on what the fields become (a value
// Envoy refuses would NACK the whole CDS or RDS update of every proxy). Fields
// mizzen does not translate yet are reported as warnings, never silently dropped.

// Envoy's limits on what DestinationRule fields turn into.
const (
	envoyMaxRingSize     = 8388608 // RingHashLbConfig.minimum_ring_size lte
	envoyMaxMaglevTable  = 5000011 // MaglevLbConfig.table_size lt (Istio: must be < and prime)
	maxDurationPrecision = time.Millisecond
)

func (v *validator) trafficPolicy(f string, p *networkingapi.TrafficPolicy) {
	if p == nil {
		return
	}
	if p.GetLoadBalancer() == nil && p.GetConnectionPool() == nil && p.GetOutlierDetection() == nil && p.GetTls() == nil &&
		len(p.GetPortLevelSettings()) == 0 && p.GetTunnel() == nil && p.GetProxyProtocol() == nil && p.GetRetryBudget() == nil {
		v.fail(f, "EmptyTrafficPolicy", "trafficPolicy must set at least one field")
		return
	}
	if p.GetTunnel() != nil {
		v.unsupported(f + ".tunnel")
	}
	if p.GetProxyProtocol() != nil {
		v.unsupported(f + ".proxyProtocol")
	}
	if p.GetRetryBudget() != nil {
		v.unsupported(f + ".retryBudget")
	}
	v.loadBalancer(f+".loadBalancer", p.GetLoadBalancer())
	v.connectionPool(f+".connectionPool", p.GetConnectionPool())
	v.outlierDetection(f+".outlierDetection", p.GetOutlierDetection())
	v.clientTLS(f+".tls", p.GetTls())
	ports := map[uint32]int{}
	for i, pl := range p.GetPortLevelSettings() {
		pf := fmt.Sprintf("%s.portLevelSettings[%d]", f, i)
		if pl == nil {
			v.fail(pf, "MissingField", "port level settings must not be null")
			continue
		}
		if pl.GetPort() == nil {
			v.fail(pf+".port", "MissingField", "port is required")
		} else if n := pl.GetPort().GetNumber(); n == 0 || n > 65535 {
			v.fail(pf+".port.number", "InvalidPort", "port number must be 1-65535")
		} else if first, dup := ports[n]; dup {
			v.warn(pf+".port.number", "DuplicatePortLevelSettings",
				fmt.Sprintf("port %d already has settings at portLevelSettings[%d], which win; these are ignored", n, first))
		} else {
			ports[n] = i
		}
		if pl.GetLoadBalancer() == nil && pl.GetConnectionPool() == nil && pl.GetOutlierDetection() == nil && pl.GetTls() == nil {
			v.fail(pf, "EmptyTrafficPolicy", "port level settings must set at least one of loadBalancer, connectionPool, outlierDetection, tls")
			continue
		}
		v.loadBalancer(pf+".loadBalancer", pl.GetLoadBalancer())
		v.connectionPool(pf+".connectionPool", pl.GetConnectionPool())
		v.outlierDetection(pf+".outlierDetection", pl.GetOutlierDetection())
		v.clientTLS(pf+".tls", pl.GetTls())
	}
}

// clientTLS follows istiod's checks of ClientTLSSettings, plus Envoy's limits
// on what they become (an SNI over 255 bytes, an empty SAN matcher).
// credentialName names a Kubernetes Secret that only a gateway's own SDS could
// serve; istiod ignores such settings on sidecars and mizzen serves no
// credentials to gateways either, so the setting is ignored (warning) rather
// than a cluster left waiting for a secret.
func (v *validator) clientTLS(f string, t *networkingapi.ClientTLSSettings) {
	if t == nil {
		return
	}
	mode := t.GetMode()
	if _, ok := networkingapi.ClientTLSSettings_TLSmode_name[int32(mode)]; !ok {
		v.fail(f+".mode", "InvalidTLSMode", fmt.Sprintf("unknown mode %d (want DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL)", mode))
		return
	}
	if len(t.GetSni()) > 255 {
		v.fail(f+".sni", "InvalidSNI", "sni must be at most 255 bytes")
	}
	for i, san := range t.GetSubjectAltNames() {
		if san == "" {
			v.fail(fmt.Sprintf("%s.subjectAltNames[%d]", f, i), "InvalidSubjectAltName", "subject alt name must not be empty")
		}
	}
	fileTLS := mode == networkingapi.ClientTLSSettings_SIMPLE || mode == networkingapi.ClientTLSSettings_MUTUAL
	if !fileTLS {
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		if t.GetCaCertificates() != "" || len(t.GetSubjectAltNames()) > 0 || (mode == networkingapi.ClientTLSSettings_SIMPLE && t.GetCredentialName() != "") {
			v.fail(f+".insecureSkipVerify", "ConflictingTLSSettings", "caCertificates, subjectAltNames (and for SIMPLE credentialName) cannot be set when insecureSkipVerify is true")
		}
	}
	if t.GetCredentialName() != "" {
		if t.GetClientCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" || t.GetCaCrl() != "" {
			v.fail(f+".credentialName", "ConflictingTLSSettings", "clientCertificate, privateKey, caCertificates and caCrl cannot be set with credentialName")
			return
		}
		v.warn(f+".credentialName", "UnsupportedField",
			"credentialName is not supported (istiod ignores it on sidecars; mizzen serves no Secret-backed credentials yet): these tls settings are ignored, connections stay plaintext")
		return
	}
	if mode == networkingapi.ClientTLSSettings_MUTUAL {
		if t.GetClientCertificate() == "" {
			v.fail(f+".clientCertificate", "MissingField", "clientCertificate is required for MUTUAL")
		}
		if t.GetPrivateKey() == "" {
			v.fail(f+".privateKey", "MissingField", "privateKey is required for MUTUAL")
		}
	}
}

func (v *validator) loadBalancer(f string, lb *networkingapi.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	if lb.GetSimple() == networkingapi.LoadBalancerSettings_PASSTHROUGH {
		v.warn(f+".simple", "UnsupportedField", "PASSTHROUGH is not supported yet; LEAST_REQUEST applies")
	}
	if l := lb.GetLocalityLbSetting(); l != nil {
		v.localityLB(f+".localityLbSetting", l)
	}
	if lb.GetZoneAwareLbSetting() != nil {
		v.unsupported(f + ".zoneAwareLbSetting")
	}
	if lb.GetWarmupDurationSecs() != nil {
		v.unsupported(f + ".warmupDurationSecs")
	}
	if lb.GetWarmup() != nil {
		v.unsupported(f + ".warmup")
	}
	ch := lb.GetConsistentHash()
	if ch == nil {
		return
	}
	cf := f + ".consistentHash"
	switch key := ch.GetHashKey().(type) {
	case nil:
		v.warn(cf, "NoHashKey", "consistentHash sets none of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName: "+
			"nothing is hashed and every request goes to a random host")
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		v.headerToken(cf+".httpHeaderName", key.HttpHeaderName)
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		if key.HttpQueryParameterName == "" {
			v.fail(cf+".httpQueryParameterName", "InvalidHashKey", "query parameter name must not be empty")
		}
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		if !key.UseSourceIp {
			v.warn(cf+".useSourceIp", "NoHashKey", "useSourceIp is false: nothing is hashed and every request goes to a random host")
		}
	case *networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		c := key.HttpCookie
		if c.GetName() == "" {
			v.fail(cf+".httpCookie.name", "InvalidHashKey", "cookie name is required")
		} else {
			v.headerToken(cf+".httpCookie.name", c.GetName())
		}
		if c.GetTtl() != nil && c.GetTtl().AsDuration() < 0 {
			v.fail(cf+".httpCookie.ttl", "InvalidDuration", "ttl must not be negative")
		}
		for i, a := range c.GetAttributes() {
			af := fmt.Sprintf("%s.httpCookie.attributes[%d]", cf, i)
			if a.GetName() == "" {
				v.fail(af+".name", "InvalidHashKey", "cookie attribute name is required")
			} else {
				v.headerToken(af+".name", a.GetName())
			}
			if strings.ContainsAny(a.GetValue(), "\x00\r\n") {
				v.fail(af+".value", "InvalidHashKey", "cookie attribute value must not contain NUL, CR or LF")
			}
		}
	}
	//nolint:staticcheck // the deprecated field is still read, as istiod does
	legacyRing := ch.GetMinimumRingSize()
	if legacyRing != 0 {
		v.warn(cf+".minimumRingSize", "DeprecatedField", "minimumRingSize is deprecated; use ringHash.minimumRingSize")
		if ch.GetHashAlgorithm() != nil {
			v.fail(cf+".minimumRingSize", "InvalidValue", "only one of minimumRingSize, ringHash and maglev can be set")
		}
		if legacyRing > envoyMaxRingSize {
			v.fail(cf+".minimumRingSize", "InvalidValue", fmt.Sprintf("ring size must be at most %d", envoyMaxRingSize))
		}
	}
	if rh := ch.GetRingHash(); rh != nil && rh.GetMinimumRingSize() > envoyMaxRingSize {
		v.fail(cf+".ringHash.minimumRingSize", "InvalidValue", fmt.Sprintf("ring size must be at most %d", envoyMaxRingSize))
	}
	if ml := ch.GetMaglev(); ml != nil {
		switch ts := ml.GetTableSize(); {
		case ts == 0:
			v.fail(cf+".maglev.tableSize", "InvalidValue", "tableSize is required for maglev")
		case ts >= envoyMaxMaglevTable:
			v.fail(cf+".maglev.tableSize", "InvalidValue", fmt.Sprintf("tableSize must be less than %d", envoyMaxMaglevTable))
		case !isPrime(ts):
			v.fail(cf+".maglev.tableSize", "InvalidValue", fmt.Sprintf("tableSize must be a prime number, %d is not", ts))
		}
	}
}

// headerToken rejects what Envoy's header name rule (no NUL, CR, LF; not empty) refuses.
func (v *validator) headerToken(f, s string) {
	switch {
	case s == "":
		v.fail(f, "InvalidHashKey", "must not be empty")
	case strings.ContainsAny(s, "\x00\r\n"):
		v.fail(f, "InvalidHashKey", "must not contain NUL, CR or LF")
	}
}

// isPrime follows Envoy's check of the maglev table size.
func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	}
	if x&1 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for f := uint64(3); f <= limit; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

func (v *validator) connectionPool(f string, cp *networkingapi.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.GetHttp() == nil && cp.GetTcp() == nil {
		v.fail(f, "EmptyConnectionPool", "connectionPool must set tcp or http")
		return
	}
	if h := cp.GetHttp(); h != nil {
		hf := f + ".http"
		v.nonNegative(hf+".http1MaxPendingRequests", h.GetHttp1MaxPendingRequests())
		v.nonNegative(hf+".http2MaxRequests", h.GetHttp2MaxRequests())
		v.nonNegative(hf+".maxRequestsPerConnection", h.GetMaxRequestsPerConnection())
		v.nonNegative(hf+".maxRetries", h.GetMaxRetries())
		v.nonNegative(hf+".maxConcurrentStreams", h.GetMaxConcurrentStreams())
		v.duration(hf+".idleTimeout", h.GetIdleTimeout())
		if h.GetH2UpgradePolicy() == networkingapi.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.GetUseClientProtocol() {
			v.fail(hf+".useClientProtocol", "InvalidValue", "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")
		}
		if h.GetHttp2KeepAlive() != nil {
			v.unsupported(hf + ".http2KeepAlive")
		}
	}
	if t := cp.GetTcp(); t != nil {
		tf := f + ".tcp"
		v.nonNegative(tf+".maxConnections", t.GetMaxConnections())
		v.duration(tf+".connectTimeout", t.GetConnectTimeout())
		v.duration(tf+".maxConnectionDuration", t.GetMaxConnectionDuration())
		if it := t.GetIdleTimeout(); it != nil && it.AsDuration() != 0 { // 0s disables the timeout
			v.duration(tf+".idleTimeout", it)
		}
		if ka := t.GetTcpKeepalive(); ka != nil {
			v.keepaliveSeconds(tf+".tcpKeepalive.time", ka.GetTime())
			v.keepaliveSeconds(tf+".tcpKeepalive.interval", ka.GetInterval())
		}
	}
}

// keepaliveSeconds: Envoy takes keepalive time and interval in whole seconds and
// the kernel refuses 0, which would fail every upstream connection of the cluster.
func (v *validator) keepaliveSeconds(f string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	v.duration(f, d)
	if d.AsDuration() > 0 && d.AsDuration() < time.Second {
		v.fail(f, "InvalidDuration", "must be at least 1s: Envoy sets TCP keepalive timers in whole seconds")
	}
}

func (v *validator) outlierDetection(f string, od *networkingapi.OutlierDetection) {
	if od == nil {
		return
	}
	//nolint:staticcheck // read only to say it is ignored, as istiod's validation does
	if od.GetConsecutiveErrors() != 0 {
		v.warn(f+".consecutiveErrors", "IgnoredField", "consecutiveErrors is deprecated and not applied (as in current Istio): use consecutive5xxErrors or consecutiveGatewayErrors")
	}
	if !od.GetSplitExternalLocalOriginErrors() && od.GetConsecutiveLocalOriginFailures().GetValue() > 0 {
		v.fail(f+".consecutiveLocalOriginFailures", "InvalidValue", "consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true")
	}
	v.duration(f+".interval", od.GetInterval())
	v.duration(f+".baseEjectionTime", od.GetBaseEjectionTime())
	v.percent(f+".maxEjectionPercent", od.GetMaxEjectionPercent())
	v.percent(f+".minHealthPercent", od.GetMinHealthPercent())
	if len(od.GetOutlierDetectionHttpErrorCodes()) > 0 {
		v.unsupported(f + ".outlierDetectionHttpErrorCodes")
	}
}

// duration enforces istiod's rule for DestinationRule durations: at least 1ms,
// millisecond precision. Negative and zero durations fail here.
func (v *validator) duration(f string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.fail(f, "InvalidDuration", err.Error())
		return
	}
	switch dd := d.AsDuration(); {
	case dd < maxDurationPrecision:
		v.fail(f, "InvalidDuration", fmt.Sprintf("must be at least 1ms, got %s", dd))
	case dd%maxDurationPrecision != 0:
		v.fail(f, "InvalidDuration", fmt.Sprintf("only millisecond precision is supported, got %s", dd))
	}
}

func (v *validator) percent(f string, p int32) {
	if p < 0 || p > 100 {
		v.fail(f, "InvalidPercent", fmt.Sprintf("must be between 0 and 100, got %d", p))
	}
}

func (v *validator) nonNegative(f string, n int32) {
	if n < 0 {
		v.fail(f, "InvalidValue", fmt.Sprintf("must not be negative, got %d", n))
	}
}

func (v *validator) unsupported(f string) {
	v.warn(f, "UnsupportedField", "not supported by mizzen yet; ignored")
}

// subsetName: the name becomes part of cluster names (`outbound|port|subset|host`),
// so it must be a DNS-1123 label, as istiod requires.
func (v *validator) subsetName(f, name string) {
	if name == "" {
		v.fail(f, "MissingSubsetName", "subset name is required")
		return
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		v.fail(f, "InvalidSubsetName", fmt.Sprintf("%q is not a valid subset name: %s", name, strings.Join(errs, "; ")))
	}
}

func (v *validator) labels(f string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			v.fail(f, "InvalidLabel", fmt.Sprintf("label key %q: %s", k, strings.Join(errs, "; ")))
		}
		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			v.fail(f, "InvalidLabel", fmt.Sprintf("label %s value %q: %s", k, labels[k], strings.Join(errs, "; ")))
		}
	}
}

// exportTo follows istiod: ".", "*" or namespace names, no duplicates ("." counts
// as the own namespace), "*" alone. "~" is for ServiceEntries only.
func (v *validator) exportTo(f, ns string, exportTo []string) {
	seen := map[string]bool{}
	for i, e := range exportTo {
		ef := fmt.Sprintf("%s[%d]", f, i)
		key := e
		if e == exportPrivate {
			key = ns
		}
		if seen[key] {
			v.fail(ef, "InvalidExportTo", fmt.Sprintf("duplicate entry %q (\".\" is namespace %s)", e, ns))
			continue
		}
		seen[key] = true
		if e == exportPrivate || e == exportPublic {
			continue
		}
		if errs := validation.IsDNS1123Label(e); len(errs) > 0 {
			v.fail(ef, "InvalidExportTo", fmt.Sprintf("%q is neither \".\", \"*\" nor a namespace name", e))
		}
	}
	if seen[exportPublic] && len(exportTo) > 1 {
		v.fail(f, "InvalidExportTo", "\"*\" exports to every namespace and cannot be combined with other entries")
	}
}

// localityLB checks what istiod refuses in a localityLbSetting.
func (v *validator) localityLB(f string, l *networkingapi.LocalityLoadBalancerSetting) {
	if len(l.GetDistribute()) > 0 && len(l.GetFailover()) > 0 {
		v.fail(f, "InvalidValue", "distribute and failover cannot both be set")
	}
	for i, d := range l.GetDistribute() {
		sum := uint32(0)
		for _, w := range d.GetTo() {
			sum += w
		}
		if sum != 100 {
			v.fail(fmt.Sprintf("%s.distribute[%d].to", f, i), "InvalidValue", fmt.Sprintf("the weights add up to %d, not 100", sum))
		}
	}
	for i, fo := range l.GetFailover() {
		if fo.GetFrom() == fo.GetTo() {
			v.fail(fmt.Sprintf("%s.failover[%d]", f, i), "InvalidValue", "from and to must be different regions")
		}
	}
}
