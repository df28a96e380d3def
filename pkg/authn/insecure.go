package authn

// InsecureDevIdentity is the identity of a proxy that proved nothing: it is
// taken from the proxy's own node metadata. Only `mizzen serve
// --insecure-dev-identity` (cluster-less development) uses it; it marks the
// identity so logs and debug output say it was asserted, not proven.
func InsecureDevIdentity(trustDomain, namespace, serviceAccount string) Identity {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	return Identity{TrustDomain: trustDomain, Namespace: namespace, ServiceAccount: serviceAccount, Via: "insecure-dev-metadata"}
}
