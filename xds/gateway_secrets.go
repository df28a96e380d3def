package xds

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/translate"
)

// credentials returns the SDS part holding the gateway credentials of one
// namespace (Secrets named by Gateway servers' tls.credentialName, Istio's
// "Secure Gateways"): `kubernetes://<name>` with the certificate chain and key
// inline, and `kubernetes://<name>-cacert` for a credential with a CA. Built
// once per generation and namespace and shared by that namespace's gateways;
// an unchanged Secret keeps its item hash, so a push resends nothing.
//
// Who gets it is istiod's rule: a gateway proxy of the Secret's own namespace
// whose stream proved an identity (see generation.build). nil for none.
func (g *generation) credentials(ns string) (*part, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.creds[ns]; ok {
		return p, nil
	}
	creds := g.snap.CredentialsIn(ns)
	var p *part
	if len(creds) > 0 {
		var out []*tlsv3.Secret
		names := map[string]bool{}
		for _, c := range creds {
			names[translate.CredentialSecretName(c.Name)] = true
		}
		for _, c := range creds {
			out = append(out, &tlsv3.Secret{
				Name: translate.CredentialSecretName(c.Name),
				Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: inline(c.CertChain),
					PrivateKey:       inline(c.Key),
				}},
			})
			// A credential named like another's CA Secret wins the name:
			// it is what a server asking for it by credentialName means.
			if ca := translate.CredentialCASecretName(c.Name); c.CACert != nil && !names[ca] {
				out = append(out, &tlsv3.Secret{
					Name: ca,
					Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(c.CACert)}},
				})
			}
		}
		var err error
		if p, err = newPart(out, secretName); err != nil {
			return nil, err
		}
	}
	g.creds[ns] = p
	return p, nil
}

func inline(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}

// gatewayCredentials is the credentials part a proxy may be served: only a
// gateway, only with a proven identity, only its own namespace's.
func (g *generation) gatewayCredentials(p *model.Proxy) (*part, error) {
	if p.Type != model.RouterProxy || p.Identity == "" {
		return nil, nil
	}
	return g.credentials(p.Namespace)
}

// sdsSet is the proxy's SDS resources: its own certificate and root (when
// issued) and its namespace's gateway credentials. Called with cn.mu held.
func (cn *conn) sdsSet() *resourceSet {
	if cn.secret == nil && cn.creds == nil {
		return nil // nothing to serve: as before credentials, no SDS set at all
	}
	var parts []*part
	if cn.secret != nil {
		parts = append(parts, cn.secret.ca, cn.secret.leaf)
	}
	parts = append(parts, cn.creds)
	return newResourceSet(parts...)
}
