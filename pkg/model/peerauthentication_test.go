package model

import (
	"strings"
	"testing"
	"time"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	security "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type paMode = securityapi.PeerAuthentication_MutualTLS_Mode

const (
	paUnset      = securityapi.PeerAuthentication_MutualTLS_UNSET
	paDisable    = securityapi.PeerAuthentication_MutualTLS_DISABLE
	paPermissive = securityapi.PeerAuthentication_MutualTLS_PERMISSIVE
	paStrict     = securityapi.PeerAuthentication_MutualTLS_STRICT
)

var paEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// peerAuthn builds a policy created age minutes after paEpoch.
func peerAuthn(ns, name string, age int, sel map[string]string, mode paMode, ports map[uint32]paMode) *security.PeerAuthentication {
	pa := &security.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		CreationTimestamp: metav1.NewTime(paEpoch.Add(time.Duration(age) * time.Minute))}}
	pa.Spec.Mtls = &securityapi.PeerAuthentication_MutualTLS{Mode: mode}
	if sel != nil {
		pa.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: sel}
	}
	if ports != nil {
		pa.Spec.PortLevelMtls = map[uint32]*securityapi.PeerAuthentication_MutualTLS{}
		for p, m := range ports {
			pa.Spec.PortLevelMtls[p] = &securityapi.PeerAuthentication_MutualTLS{Mode: m}
		}
	}
	return pa
}

func TestMTLSForPrecedence(t *testing.T) {
	web := map[string]string{"app": "web"}
	cases := []struct {
		name     string
		policies []*security.PeerAuthentication
		ns       string
		labels   map[string]string
		want     MTLSMode
		ports    map[uint32]MTLSMode
	}{
		{name: "nothing is PERMISSIVE", ns: "shop", labels: web, want: MTLSPermissive},
		{name: "mesh-wide", ns: "shop", labels: web, want: MTLSStrict,
			policies: []*security.PeerAuthentication{peerAuthn("istio-system", "default", 0, nil, paStrict, nil)}},
		{name: "namespace over mesh", ns: "shop", labels: web, want: MTLSDisable,
			policies: []*security.PeerAuthentication{
				peerAuthn("istio-system", "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "default", 0, nil, paDisable, nil)}},
		{name: "other namespace's policy does not apply", ns: "shop", labels: web, want: MTLSStrict,
			policies: []*security.PeerAuthentication{
				peerAuthn("istio-system", "default", 0, nil, paStrict, nil),
				peerAuthn("other", "default", 0, nil, paDisable, nil)}},
		{name: "namespace UNSET inherits mesh", ns: "shop", labels: web, want: MTLSStrict,
			policies: []*security.PeerAuthentication{
				peerAuthn("istio-system", "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "default", 0, nil, paUnset, nil)}},
		{name: "workload over namespace", ns: "shop", labels: web, want: MTLSPermissive,
			policies: []*security.PeerAuthentication{
				peerAuthn("shop", "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "web", 0, web, paPermissive, nil)}},
		{name: "workload selector must match", ns: "shop", labels: map[string]string{"app": "db"}, want: MTLSStrict,
			policies: []*security.PeerAuthentication{
				peerAuthn("shop", "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "web", 0, web, paDisable, nil)}},
		{name: "root namespace selector policy is ignored", ns: "istio-system", labels: web, want: MTLSPermissive,
			policies: []*security.PeerAuthentication{peerAuthn("istio-system", "web", 0, web, paStrict, nil)}},
		{name: "oldest workload policy wins", ns: "shop", labels: web, want: MTLSDisable,
			policies: []*security.PeerAuthentication{
				peerAuthn("shop", "a-newer", 5, web, paStrict, nil),
				peerAuthn("shop", "z-older", 1, web, paDisable, nil)}},
		{name: "same age: name decides", ns: "shop", labels: web, want: MTLSStrict,
			policies: []*security.PeerAuthentication{
				peerAuthn("shop", "b", 1, web, paDisable, nil),
				peerAuthn("shop", "a", 1, web, paStrict, nil)}},
		{name: "oldest namespace policy wins", ns: "shop", labels: web, want: MTLSStrict,
			policies: []*security.PeerAuthentication{
				peerAuthn("shop", "newer", 5, nil, paDisable, nil),
				peerAuthn("shop", "older", 1, nil, paStrict, nil)}},
		{name: "workload UNSET with ports inherits namespace", ns: "shop", labels: web, want: MTLSStrict,
			ports: map[uint32]MTLSMode{8080: MTLSDisable, 9090: MTLSStrict},
			policies: []*security.PeerAuthentication{
				peerAuthn("shop", "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "web", 0, web, paUnset, map[uint32]paMode{8080: paDisable, 9090: paUnset})}},
		{name: "port UNSET inherits the workload mode", ns: "shop", labels: web, want: MTLSDisable,
			ports: map[uint32]MTLSMode{9090: MTLSDisable, 8443: MTLSStrict},
			policies: []*security.PeerAuthentication{
				peerAuthn("istio-system", "default", 0, nil, paStrict, nil),
				peerAuthn("shop", "web", 0, web, paDisable, map[uint32]paMode{9090: paUnset, 8443: paStrict})}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := Build(&Inputs{PeerAuthentications: c.policies}, 1)
			for _, e := range snap.Errors {
				if !e.Warning {
					t.Fatalf("unexpected error: %v", e)
				}
			}
			got := snap.MTLSFor(c.ns, c.labels)
			if got.Mode != c.want {
				t.Errorf("mode = %v, want %v", got.Mode, c.want)
			}
			if len(got.PerPort) != len(c.ports) {
				t.Errorf("ports = %v, want %v", got.PerPort, c.ports)
			}
			for p, m := range c.ports {
				if got.ForPort(p) != m {
					t.Errorf("port %d = %v, want %v", p, got.ForPort(p), m)
				}
			}
			if got.ForPort(1) != got.Mode {
				t.Errorf("a port without an entry must get the workload mode")
			}
		})
	}
}

func TestNamespaceMTLSMode(t *testing.T) {
	snap := Build(&Inputs{PeerAuthentications: []*security.PeerAuthentication{
		peerAuthn("istio-system", "default", 0, nil, paStrict, nil),
		peerAuthn("legacy", "default", 0, nil, paDisable, nil),
		peerAuthn("shop", "web", 0, map[string]string{"app": "web"}, paDisable, nil),
	}}, 1)
	for ns, want := range map[string]MTLSMode{"legacy": MTLSDisable, "shop": MTLSStrict, "other": MTLSStrict} {
		if got := snap.NamespaceMTLSMode(ns); got != want {
			t.Errorf("%s: %v, want %v", ns, got, want)
		}
	}
}

func TestValidatePeerAuthentication(t *testing.T) {
	bad := peerAuthn("shop", "bad", 0, nil, paMode(7), map[uint32]paMode{8080: paStrict})
	noSel := peerAuthn("shop", "nosel", 0, nil, paStrict, map[uint32]paMode{8080: paDisable})
	port0 := peerAuthn("shop", "port0", 0, map[string]string{"app": "web"}, paStrict, map[uint32]paMode{0: paDisable, 70000: paStrict, 80: paMode(9)})
	fields := func(errs []ConfigError) string {
		var out []string
		for _, e := range errs {
			if e.Warning {
				t.Errorf("want an error, got warning %v", e)
			}
			out = append(out, e.Field+"="+e.Code)
		}
		return strings.Join(out, ",")
	}
	if got, want := fields(ValidatePeerAuthentication(bad)), "spec.mtls.mode=InvalidMTLSMode,spec.portLevelMtls=PortLevelMtlsWithoutSelector"; got != want {
		t.Errorf("bad: %s, want %s", got, want)
	}
	if got, want := fields(ValidatePeerAuthentication(noSel)), "spec.portLevelMtls=PortLevelMtlsWithoutSelector"; got != want {
		t.Errorf("nosel: %s, want %s", got, want)
	}
	if got, want := fields(ValidatePeerAuthentication(port0)),
		"spec.portLevelMtls[0]=InvalidPort,spec.portLevelMtls[80].mode=InvalidMTLSMode,spec.portLevelMtls[70000]=InvalidPort"; got != want {
		t.Errorf("port0: %s, want %s", got, want)
	}
	// Invalid policies are skipped whole: the namespace stays PERMISSIVE.
	snap := Build(&Inputs{PeerAuthentications: []*security.PeerAuthentication{bad, noSel}}, 1)
	if got := snap.NamespaceMTLSMode("shop"); got != MTLSPermissive {
		t.Errorf("invalid policies applied: %v", got)
	}
	if len(snap.Errors) != 3 {
		t.Errorf("errors = %v", snap.Errors)
	}
}

func TestScopeClientMTLS(t *testing.T) {
	snap := Build(&Inputs{}, 1)
	plain := snap.ScopeFor(&Proxy{Type: SidecarProxy, Namespace: "shop"})
	withID := snap.ScopeFor(&Proxy{Type: SidecarProxy, Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/web"})
	if plain.ClientMTLS || plain.Key != "" {
		t.Errorf("plain proxy scope = %+v", plain)
	}
	if !withID.ClientMTLS || withID.Key == plain.Key {
		t.Errorf("proxy with identity scope = %+v, must differ from %+v", withID, plain)
	}
	if snap.View(plain).ClientMTLS() || !snap.View(withID).ClientMTLS() {
		t.Error("views must carry ClientMTLS")
	}
	if snap.View(withID).Services() == nil && len(snap.Services()) > 0 {
		t.Error("an mTLS view of an unrestricted mesh sees everything")
	}
}
