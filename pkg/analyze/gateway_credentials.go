package analyze

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// gatewayCredentials explains the model's "no TLS Secret" (MissingCredential)
// when a Secret of that name does exist: one holding no certificate and key
// (only a CA, say), or one in another namespace than the gateway workload's,
// where gateways do not look. Saying "no Secret" then sends people looking
// for a typo in the name instead of at the Secret.
func (a *analysis) gatewayCredentials() {
	secrets := map[string]*corev1.Secret{}
	elsewhere := map[string][]string{} // name -> namespaces holding a Secret of that name
	for _, s := range a.snap.Inputs.Secrets {
		secrets[s.Namespace+"/"+s.Name] = s
		elsewhere[s.Name] = append(elsewhere[s.Name], s.Namespace)
	}
	for _, gw := range a.snap.Gateways {
		namespaces := gatewayWorkloadNamespaces(a.snap.Inputs.Pods, gw.Namespace, gw.Spec.GetSelector())
		for i, srv := range gw.Spec.GetServers() {
			name := srv.GetTls().GetCredentialName()
			if !model.IsTLSTerminating(srv) || name == "" {
				continue
			}
			field := fmt.Sprintf("spec.servers[%d].tls.credentialName", i)
			for _, ns := range namespaces {
				key := ns + "/" + name
				if a.snap.Credential(ns, name) != nil {
					continue
				}
				var msg, hint string
				if s := secrets[key]; s != nil {
					if hasCertOrKey(s) {
						continue // the model says what is wrong with it (InvalidCredential)
					}
					msg = fmt.Sprintf("Secret %s exists but is no TLS credential: its keys are %s (type %s), and a gateway credential needs both tls.crt and tls.key (or cert and key); server skipped",
						key, secretKeys(s), secretType(s))
					hint = fmt.Sprintf("add the certificate and key to Secret %s, or point credentialName at the Secret that holds them", key)
				} else if others := slices.DeleteFunc(slices.Clone(elsewhere[name]), func(o string) bool { return o == ns }); len(others) > 0 {
					msg = fmt.Sprintf("no Secret %s: the gateway workload runs in namespace %s and reads its credentials there, but Secret %s exists only in namespace %s; server skipped",
						key, ns, name, strings.Join(others, ", "))
					hint = fmt.Sprintf("create Secret %s in namespace %s (gateways never read another namespace's Secrets)", name, ns)
				} else {
					continue // truly missing: the model's message is right
				}
				a.add(Finding{ConfigError: model.ConfigError{Kind: "Gateway", Namespace: gw.Namespace, Name: gw.Name, Field: field,
					Code: "MissingCredential", Message: msg}, ID: InvalidGatewayCredential, Hint: hint})
			}
		}
	}
}

// gatewayWorkloadNamespaces are the namespaces of the Pods a Gateway selects,
// or its own namespace when none is known: where its credentials are read, as
// the model looks them up.
func gatewayWorkloadNamespaces(pods []*corev1.Pod, gwNamespace string, selector map[string]string) []string {
	set := map[string]bool{}
	for _, p := range pods {
		if len(selector) > 0 && model.LabelsMatch(selector, p.Labels) {
			set[p.Namespace] = true
		}
	}
	if len(set) == 0 {
		return []string{gwNamespace}
	}
	return slices.Sorted(maps.Keys(set))
}

// hasCertOrKey: the Secret has a certificate or key value the model read
// (and so judged). `mizzen analyze` also reads Secrets that cannot be
// credentials, with key names only (file.Options.KeepOtherSecrets): those
// have none.
func hasCertOrKey(s *corev1.Secret) bool {
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "cert", "key"} {
		if v, ok := s.Data[k]; ok && v != nil {
			return true
		}
		if _, ok := s.StringData[k]; ok {
			return true
		}
	}
	return false
}

// secretKeys lists a Secret's key names (never its values).
func secretKeys(s *corev1.Secret) string {
	keys := slices.Sorted(maps.Keys(s.Data))
	for _, k := range slices.Sorted(maps.Keys(s.StringData)) {
		keys = append(keys, k+" (stringData)")
	}
	if len(keys) == 0 {
		return "none"
	}
	return "[" + strings.Join(keys, ", ") + "]"
}

func secretType(s *corev1.Secret) string {
	if s.Type == "" {
		return string(corev1.SecretTypeOpaque)
	}
	return string(s.Type)
}
