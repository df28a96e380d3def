package analyze

import (
	"fmt"

	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// serverCertVerification: TLS origination (SIMPLE or MUTUAL) without CA
// certificates checks the server only against the proxy's system CA bundle
// (as istio-agent does with VERIFY_CERTIFICATE_AT_CLIENT), which any public CA
// satisfies for any name it issued. Istio warns about it (IST0128/IST0129);
// so does mizzen. ISTIO_MUTUAL is verified against the mesh's root and is fine.
func (a *analysis) serverCertVerification() {
	unverified := func(tls *networkingapi.ClientTLSSettings) bool {
		mode := tls.GetMode()
		return (mode == networkingapi.ClientTLSSettings_SIMPLE || mode == networkingapi.ClientTLSSettings_MUTUAL) &&
			tls.GetCaCertificates() == "" && tls.GetCredentialName() == "" && !tls.GetInsecureSkipVerify().GetValue()
	}
	for _, dr := range a.snap.DestinationRules {
		host := model.ResolveHost(dr.Spec.GetHost(), dr.Namespace)
		tp := dr.Spec.GetTrafficPolicy()
		if tls := tp.GetTls(); unverified(tls) {
			a.warn("DestinationRule", dr.Namespace, dr.Name, "spec.trafficPolicy.tls", "NoServerCertificateVerification",
				fmt.Sprintf("TLS mode %s without caCertificates or credentialName: the server certificate of %s is checked against the proxy's system CA bundle only, not a CA of yours", tls.GetMode(), host), "")
		}
		for i, pl := range tp.GetPortLevelSettings() {
			if tls := pl.GetTls(); unverified(tls) {
				a.warn("DestinationRule", dr.Namespace, dr.Name, fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].tls", i),
					"NoServerCertificateVerificationPortLevel",
					fmt.Sprintf("TLS mode %s without caCertificates or credentialName: the server certificate of %s port %d is checked against the proxy's system CA bundle only, not a CA of yours",
						tls.GetMode(), host, pl.GetPort().GetNumber()), "")
			}
		}
	}
}

// meshConfig: settings mizzen does not take from the mesh config.
func (a *analysis) meshConfig() {
	if len(a.snap.Mesh.GetDiscoverySelectors()) > 0 {
		// Same field and code as the model's generic IgnoredField report, which
		// this replaces with a hint.
		a.warn("ConfigMap", model.MeshConfigMapNamespace, model.MeshConfigMapName, "data.mesh discoverySelectors", "IgnoredField",
			"mizzen does not read discoverySelectors from the mesh config: it serves every namespace",
			"pass the selectors to mizzen serve (and mizzen analyze) as --discovery-selectors")
	}
}
