package model

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// Credential is a gateway server certificate from a Kubernetes Secret named by
// a Gateway server's tls.credentialName (Istio's "Secure Gateways"). Gateways
// read it over SDS as `kubernetes://<name>`; the CA bundle of a MUTUAL server
// as `kubernetes://<name>-cacert`.
type Credential struct {
	Namespace, Name string
	CertChain, Key  []byte
	// CACert validates client certificates (MUTUAL): key ca.crt (or cacert) of
	// the same Secret, else of the Secret `<name>-cacert`.
	CACert []byte
}

// Istio's Secret keys: type kubernetes.io/tls, or generic (Opaque) keys.
const (
	secretKeyTLSCert    = "tls.crt"
	secretKeyTLSKey     = "tls.key"
	secretKeyTLSCA      = "ca.crt"
	secretKeyGenericCrt = "cert"
	secretKeyGenericKey = "key"
	secretKeyGenericCA  = "cacert"
	// CACertSecretSuffix names the Secret holding a MUTUAL server's CA when the
	// credential's own Secret has none.
	CACertSecretSuffix = "-cacert"
)

// IsCredentialSecret tells whether a Secret can be a gateway credential (or its
// CA): the sources keep only these, so service-account tokens and the like
// never sit in mizzen's memory.
func IsCredentialSecret(s *corev1.Secret) bool {
	if s.Type != corev1.SecretTypeTLS && s.Type != corev1.SecretTypeOpaque && s.Type != "" {
		return false
	}
	for _, k := range []string{secretKeyTLSCert, secretKeyGenericCrt, secretKeyTLSCA, secretKeyGenericCA} {
		if _, ok := s.Data[k]; ok {
			return true
		}
		if _, ok := s.StringData[k]; ok {
			return true
		}
	}
	return false
}

func secretValue(s *corev1.Secret, keys ...string) []byte {
	for _, k := range keys {
		if v, ok := s.Data[k]; ok {
			return v
		}
		if v, ok := s.StringData[k]; ok {
			return []byte(v)
		}
	}
	return nil
}

// credentials indexes the Secrets by namespace/name: a parsed Credential, or
// why the Secret cannot be one.
type credentials struct {
	ok      map[string]*Credential
	invalid map[string]string
	secrets map[string]*corev1.Secret
}

func buildCredentials(in []*corev1.Secret) credentials {
	c := credentials{ok: map[string]*Credential{}, invalid: map[string]string{}, secrets: map[string]*corev1.Secret{}}
	for _, s := range in {
		c.secrets[s.Namespace+"/"+s.Name] = s
	}
	for key, s := range c.secrets {
		cert, k := secretValue(s, secretKeyTLSCert, secretKeyGenericCrt), secretValue(s, secretKeyTLSKey, secretKeyGenericKey)
		if cert == nil && k == nil {
			continue // a CA-only Secret (`<name>-cacert`)
		}
		if cert == nil || k == nil {
			c.invalid[key] = fmt.Sprintf("Secret %s has no certificate and key (keys tls.crt/tls.key or cert/key)", key)
			continue
		}
		pair, err := tls.X509KeyPair(cert, k)
		if err != nil {
			c.invalid[key] = fmt.Sprintf("Secret %s: certificate and key do not parse as a PEM pair: %v", key, err)
			continue
		}
		if msg := envoyKeyProblem(pair); msg != "" {
			c.invalid[key] = fmt.Sprintf("Secret %s: %s", key, msg)
			continue
		}
		cr := &Credential{Namespace: s.Namespace, Name: s.Name, CertChain: cert, Key: k}
		ca := secretValue(s, secretKeyTLSCA, secretKeyGenericCA)
		if ca == nil {
			if cs := c.secrets[s.Namespace+"/"+s.Name+CACertSecretSuffix]; cs != nil {
				ca = secretValue(cs, secretKeyTLSCA, secretKeyGenericCA)
			}
		}
		if ca != nil && validPEMCerts(ca) {
			cr.CACert = ca
		}
		c.ok[key] = cr
	}
	return c
}

// envoyKeyProblem: Envoy refuses a certificate whose public key it does not
// support, and with it the whole SDS response (every credential of the
// gateway): RSA keys need 2048 bits or more, ECDSA keys the P-256, P-384 or
// P-521 curve (Envoy 1.40's ContextImpl; checked in validation mode, which
// also takes Ed25519).
func envoyKeyProblem(pair tls.Certificate) string {
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Sprintf("certificate does not parse: %v", err)
	}
	switch k := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 {
			return fmt.Sprintf("certificate key is RSA with %d bits; Envoy accepts RSA keys of 2048 bits or more", bits)
		}
	case *ecdsa.PublicKey:
		if name := k.Curve.Params().Name; name != "P-256" && name != "P-384" && name != "P-521" {
			return fmt.Sprintf("certificate key is ECDSA on curve %s; Envoy accepts P-256, P-384 and P-521", name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Sprintf("certificate key type %T is not one Envoy accepts (RSA of 2048 bits or more, ECDSA P-256/P-384/P-521, Ed25519)", k)
	}
	return ""
}

func validPEMCerts(b []byte) bool {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return n > 0
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return false
		}
		n++
	}
}

// Credential returns the valid credential `name` in namespace ns, or nil.
func (s *Snapshot) Credential(ns, name string) *Credential {
	return s.creds.ok[ns+"/"+name]
}

// CredentialsIn lists the valid credentials of a namespace, by name: what a
// gateway of that namespace may be served.
func (s *Snapshot) CredentialsIn(ns string) []*Credential {
	var out []*Credential
	for _, c := range s.creds.ok {
		if c.Namespace == ns {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ServerCredentialUsable tells whether a gateway proxy in namespace ns can
// serve server s as far as Secrets go: the credentials a terminating server
// names (and for MUTUAL/OPTIONAL_MUTUAL the first one's CA) must be valid in
// the gateway's namespace, as Istio looks them up there. Servers with
// certificate files or ISTIO_MUTUAL need no Secret.
func (s *Snapshot) ServerCredentialUsable(ns string, srv *networkingapi.Server) bool {
	if !IsTLSTerminating(srv) {
		return true
	}
	names := ServerCredentialNames(srv.GetTls())
	for i, name := range names {
		c := s.Credential(ns, name)
		if c == nil {
			return false
		}
		if i == 0 && ValidatesClient(srv.GetTls().GetMode()) && c.CACert == nil {
			return false
		}
	}
	return true
}

// IsTLSTerminating: a server the gateway terminates TLS for (HTTPS, or TLS
// and TCP servers with a terminating tls.mode).
func IsTLSTerminating(srv *networkingapi.Server) bool { return ServerKind(srv).Terminates() }

// checkGatewayCredentials reports the TLS servers of gw whose credential is
// missing or broken in the namespaces of the gateway workloads it selects
// (known from Pods; without any, the Gateway's own namespace, the common
// layout). Translation skips such a server for a proxy of that namespace.
func (s *Snapshot) checkGatewayCredentials(in *Inputs, gw *networking.Gateway) []ConfigError {
	nss := map[string]bool{}
	for _, p := range in.Pods {
		if len(gw.Spec.GetSelector()) > 0 && LabelsMatch(gw.Spec.GetSelector(), p.Labels) {
			nss[p.Namespace] = true
		}
	}
	if len(nss) == 0 {
		nss[gw.Namespace] = true
	}
	namespaces := make([]string, 0, len(nss))
	for ns := range nss {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	v := validator{kind: "Gateway", ns: gw.Namespace, name: gw.Name}
	for i, srv := range gw.Spec.GetServers() {
		if !IsTLSTerminating(srv) {
			continue
		}
		names := ServerCredentialNames(srv.GetTls())
		for j, name := range names {
			f := fmt.Sprintf("spec.servers[%d].tls.credentialName", i)
			if len(srv.GetTls().GetCredentialNames()) > 0 {
				f = fmt.Sprintf("spec.servers[%d].tls.credentialNames[%d]", i, j)
			}
			for _, ns := range namespaces {
				key := ns + "/" + name
				switch {
				case s.creds.invalid[key] != "":
					v.fail(f, "InvalidCredential", s.creds.invalid[key]+"; server skipped")
				case s.creds.ok[key] == nil:
					v.fail(f, "MissingCredential", fmt.Sprintf("no TLS Secret %s (in the gateway workload's namespace); server skipped", key))
				case j == 0 && ValidatesClient(srv.GetTls().GetMode()) && s.creds.ok[key].CACert == nil:
					v.fail(f, "MissingCACert", fmt.Sprintf("%s needs a CA: key ca.crt in Secret %s or Secret %s%s; server skipped", srv.GetTls().GetMode(), key, key, CACertSecretSuffix))
				}
			}
		}
	}
	return v.errs
}
