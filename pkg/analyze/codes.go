package analyze

// Message IDs. Where Istio's analyzer has a message for the same problem,
// mizzen reports its ID (https://istio.io/latest/docs/reference/config/analysis/),
// so runbooks and search results for it apply; mizzen's own checks use MZ IDs.
const (
	ReferencedResourceNotFound                = "IST0101"
	SchemaValidationError                     = "IST0106"
	MisplacedAnnotation                       = "IST0107"
	UnknownAnnotation                         = "IST0108"
	ConflictingMeshGatewayVirtualServiceHosts = "IST0109"
	MultipleSidecarsWithoutWorkloadSelectors  = "IST0111"
	InvalidRegexp                             = "IST0122"
	NoMatchingWorkloadsFound                  = "IST0127"
	NoServerCertVerificationDestinationLevel  = "IST0128"
	NoServerCertVerificationPortLevel         = "IST0129"
	SchemaWarning                             = "IST0133"
	InvalidGatewayCredential                  = "IST0161"

	// UnsupportedByMizzen: valid Istio that mizzen does not implement (yet).
	UnsupportedByMizzen = "MZ0001"
	// VirtualServiceNotVisible: a calling proxy's namespace cannot see a
	// VirtualService (exportTo, its Sidecar's egress hosts, discovery selection).
	VirtualServiceNotVisible = "MZ0002"
	// PathMatchLooksLikePattern: an exact or prefix path with glob or regex
	// characters, which Envoy matches literally (also an AuthorizationPolicy
	// value with "*" in the middle).
	PathMatchLooksLikePattern = "MZ0003"
	// DelegateNotUsed: a delegate VirtualService or delegated route has no effect.
	DelegateNotUsed = "MZ0004"
	// ConflictingServiceEntry: a host defined twice; the first definition wins.
	ConflictingServiceEntry = "MZ0005"
	// PortProtocolConflict: one port carries different protocols (a Service's,
	// or a gateway workload's across its Gateways).
	PortProtocolConflict = "MZ0006"
	// DuplicateSubset: a subset name defined twice for one host.
	DuplicateSubset = "MZ0007"
	// ServiceOutsideDiscovery: a referenced host is a Service in a namespace
	// discovery selection leaves out, so mizzen does not know it.
	ServiceOutsideDiscovery = "MZ0008"
	// ConfigNotRead: a file, object or setting mizzen could not read.
	ConfigNotRead = "MZ0009"
	// PrincipalsWithoutMTLS: an AuthorizationPolicy matches on principals or
	// namespaces where the server does not require mTLS.
	PrincipalsWithoutMTLS = "MZ0010"
)

// classify gives a finding's code (model.ConfigError.Code) its message ID and
// a generic fix hint; checks that know better set their own hint.
func classify(code string, warning bool) (id, hint string) {
	switch code {
	case "ReferencedResourceNotFound":
		return ReferencedResourceNotFound, "create the referenced object, or correct the reference"
	case "DestinationPortNotFound":
		return ReferencedResourceNotFound, "use one of the service's ports in destination.port.number"
	case "ReferencedSubsetNotFound":
		return ReferencedResourceNotFound, "define the subset in a DestinationRule for this host, or remove it from the route"
	case "GatewaySelectsNoWorkload":
		return ReferencedResourceNotFound, "fix spec.selector to match the gateway pods' labels (e.g. istio: ingressgateway)"
	case "ConflictingVirtualServiceHosts":
		return ConflictingMeshGatewayVirtualServiceHosts, "merge the VirtualServices of this host into one"
	case "ConflictingSidecar":
		return MultipleSidecarsWithoutWorkloadSelectors, "keep one Sidecar without workloadSelector per namespace; give the others selectors"
	case "InvalidRegex":
		return InvalidRegexp, "write an RE2 regular expression (no lookaround or backreferences); Envoy matches it against the whole value"
	case "RegexTooLarge":
		return InvalidRegexp, "make the regex's RE2 program smaller (Envoy accepts 100 instructions): fewer alternatives and smaller {n,m} counts, a class instead of an alternation of characters; a literal right after ^ costs nothing, and a prefix or exact match none at all"
	case "InvalidEndpointAddress", "InvalidEndpointPort":
		return SchemaValidationError, "write an IP address of the slice's addressType and ports in 1-65535 (the apiserver refuses anything else); mizzen leaves out only that address or port, the rest of the slice is used"
	case "InvalidAddress", "InvalidPort":
		return SchemaValidationError, "use an IP address and ports in 1-65535 (for Services and Pods the apiserver would refuse anything else); mizzen skips the whole object until then"
	case "PrincipalsWithoutMTLS":
		return PrincipalsWithoutMTLS, "require mTLS (PeerAuthentication STRICT) for the workloads the policy selects"
	case "SubsetMatchesNoEndpoint":
		return NoMatchingWorkloadsFound, "fix the subset's labels to match the pods' labels, or deploy that version"
	case "MissingCredential", "InvalidCredential", "MissingCACert":
		return InvalidGatewayCredential, "create the TLS Secret named by tls.credentialName in the gateway workload's namespace (tls.crt/tls.key or cert/key; for MUTUAL ca.crt or a <name>-cacert Secret)"
	case "UnsupportedTLSMode":
		return SchemaValidationError, "use PASSTHROUGH with protocol HTTPS or TLS, AUTO_PASSTHROUGH with protocol TLS"
	case "NotListed":
		return ConfigNotRead, "let the kubeconfig's user list them, or analyze the manifests with -f"
	case "UnsupportedAuthzField":
		return UnsupportedByMizzen, "rewrite the condition in a form mizzen supports (docs/coverage.md); until then an ALLOW rule with it allows nothing, and a DENY rule ignores it (denies more)"
	case "IgnoredField":
		return UnsupportedByMizzen, "remove the field, or express it in a way mizzen applies (docs/coverage.md); the rest of the object applies"
	case "UnsupportedKind":
		return UnsupportedByMizzen, "express it with the Istio kinds mizzen implements (docs/coverage.md), or delete it; until then it has no effect"
	case "MissingTLS":
		return SchemaValidationError, "give the server tls settings: mode and a certificate (credentialName, or serverCertificate and privateKey)"
	case "TooManyCredentials", "InvalidTLSVersion":
		return SchemaValidationError, "fix the tls field named; mizzen skips this server until then"
	case "UnsupportedBind", "UnsupportedProtocol":
		return UnsupportedByMizzen, "bind an IP address (or none) and use HTTP, HTTP2, GRPC, HTTPS, TLS or TCP"
	case "UnsupportedCipherSuite":
		return UnsupportedByMizzen, "use cipher suite names Envoy (BoringSSL) knows, e.g. ECDHE-ECDSA-AES128-GCM-SHA256"
	case "GatewayServerWithoutRoutes":
		return ReferencedResourceNotFound, "bind a VirtualService to the Gateway with a tcp route (tls route with sniHosts for PASSTHROUGH) matching the server's port and hosts"
	case "GatewayServerConflict", "DuplicateSNIMatch":
		return ConflictingMeshGatewayVirtualServiceHosts, "give each host of a gateway port one server (and one tls match), or move one to another port"
	case "Unsupported", "UnsupportedField", "UnsupportedMatch":
		return UnsupportedByMizzen, "remove the field, or express it in a way mizzen supports (README: supported Istio fields)"
	case "DelegateNotReferenced", "DelegateMatchConflict":
		return DelegateNotUsed, "point a root VirtualService's http[].delegate at it, with matches that contain the delegate's"
	case "ConflictingServiceEntry":
		return ConflictingServiceEntry, "define each host once (one ServiceEntry or the Service)"
	case "PortProtocolConflict":
		return PortProtocolConflict, "use one protocol per port number (name the ports or set appProtocol consistently)"
	case "GatewayPortProtocolConflict":
		return PortProtocolConflict, "give this server a port number of its own: the Gateways of one workload share its ports"
	case "DuplicateSubset":
		return DuplicateSubset, "give each subset of a host a unique name"
	case "OutsideDiscoverySelection":
		return ServiceOutsideDiscovery, "label the namespace to match --discovery-selectors"
	case "VirtualServiceNotVisible":
		return VirtualServiceNotVisible, "export the VirtualService to the callers' namespace and include its host in their Sidecar's egress"
	case "AuthzWildcardLiteral":
		return PathMatchLooksLikePattern, "put \"*\" only at the start or the end of the value, or list every value it should match"
	case "DenyHTTPOnlyOnTCP":
		return SchemaWarning, "add to.operation.ports with the HTTP ports the rule is meant for, so TCP ports stay open"
	case "PathMatchLooksLikePattern":
		return PathMatchLooksLikePattern, "use uri.regex for patterns (RE2, matched against the whole path)"
	case "UnknownAnnotation":
		return UnknownAnnotation, "check the annotation's spelling; remove it if nothing reads it"
	case "MisplacedAnnotation":
		return MisplacedAnnotation, "move the annotation to a kind of object that reads it"
	case "NoServerCertificateVerification":
		return NoServerCertVerificationDestinationLevel, "set caCertificates (or credentialName) to the CA that issued the server's certificate, and subjectAltNames"
	case "NoServerCertificateVerificationPortLevel":
		return NoServerCertVerificationPortLevel, "set caCertificates (or credentialName) to the CA that issued the server's certificate, and subjectAltNames"
	case "WeightsNotSum100":
		return SchemaValidationError, "make the route's weights add up to 100"
	case "ParseError", "DecodeError", "InvalidMeshConfig":
		return ConfigNotRead, "fix the YAML or field named; mizzen skips the object (or file) until then"
	case "InjectorConfigRefused":
		return ConfigNotRead, "fix the key and field named; until then the webhook injects with the last injector config it accepted"
	case "InjectorNotApplied":
		return UnsupportedByMizzen, "pods asking for the template named are refused with this error; the other templates are used"
	case "Duplicate":
		return ConfigNotRead, "define each object once: remove or rename this definition (the one served is named; at start the oldest file wins)"
	case "InvalidName", "InvalidSecret":
		return SchemaValidationError, "fix the object as Kubernetes requires; mizzen keeps the file's previous version until then"
	}
	if warning {
		return SchemaWarning, "see the message; the object is applied as written"
	}
	return SchemaValidationError, "fix the field named; mizzen skips the whole object until then"
}
