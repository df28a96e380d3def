package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mizzenmesh/mizzen/pkg/bootstrap"
)

// Names of what the injector adds, as Istio names them.
const (
	InitContainerName  = "istio-init"
	ProxyContainerName = "istio-proxy"
	TokenVolumeName    = "istio-token"
	RootCertVolumeName = "istiod-ca-cert"
	// RootCertConfigMap is published by mizzen in every namespace.
	RootCertConfigMap = "istio-ca-root-cert"
	// TokenAudience is what mizzen's TokenReview expects.
	TokenAudience = "istio-ca"
	// TokenExpirationSeconds is Istio's; the kubelet refreshes the token at
	// 80% of it.
	TokenExpirationSeconds = 43200
	// StatsPortName is the istio-proxy port Prometheus scrapes.
	StatsPortName = "http-envoy-prom"
)

// The downward-API environment of istio-proxy. Envoy does not expand
// variables in its bootstrap, but the kubelet expands $(VAR) in a container's
// command and args from its env: the bootstrap is passed inline with
// --config-yaml and names the pod through these.
const (
	EnvPodName        = "POD_NAME"
	EnvPodNamespace   = "POD_NAMESPACE"
	EnvInstanceIP     = "INSTANCE_IP"
	EnvServiceAccount = "SERVICE_ACCOUNT"
)

// Params are what the injector needs besides the Pod and the Config.
type Params struct {
	// Namespace is used when the Pod names none (a pod created with
	// `kubectl -n`, an offline file).
	Namespace string
	// WorkloadName is the workload the pod belongs to (its Deployment, Job,
	// …); default: derived from the pod's controller, else its name.
	WorkloadName string
	// WorkloadKind, WorkloadAPIVersion and WorkloadNamespace complete it for
	// Istio's templates (ISTIO_META_OWNER, ISTIO_META_WORKLOAD_NAME) when
	// the caller knows the workload (`mizzen inject` reads a Deployment);
	// without a kind the workload is derived from the pod as istiod does.
	WorkloadKind, WorkloadAPIVersion, WorkloadNamespace string
	// ProxyEnvs are env vars for the proxy from the webhook's URL path
	// (/inject/cluster/<id>/net/<network>: ISTIO_META_CLUSTER_ID,
	// ISTIO_META_NETWORK, …), as a remote cluster's webhook configuration
	// passes them to istiod; they win over the values.
	ProxyEnvs map[string]string
}

// status is the sidecar.istio.io/status annotation, in Istio's shape: what was
// added, so tools (and a second injection) can tell.
type status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// Error is an injection refused because of something in the pod: it names
// the pod and the annotation (or field) at fault.
type Error struct {
	Namespace, Name string
	Field           string
	Reason          string
}

func (e *Error) Error() string {
	return fmt.Sprintf("Pod %s/%s %s: %s", e.Namespace, e.Name, e.Field, e.Reason)
}

// Inject adds the sidecar to pod. A pod that already has one is left as it is
// (Injected), so injecting twice changes nothing. On error pod is unchanged.
// It does not decide whether the pod should get a sidecar; see Required.
func Inject(pod *corev1.Pod, cfg *Config, p Params) error {
	_, err := InjectNotes(pod, cfg, p)
	return err
}

// InjectNotes is Inject, also returning what it could not apply as asked
// (a template function that failed on its input, say): istiod only logs
// those; mizzen hands them to the user (kubectl prints the webhook's
// warnings, `mizzen inject` prints them on stderr).
func InjectNotes(pod *corev1.Pod, cfg *Config, p Params) ([]string, error) {
	if Injected(pod) {
		return nil, nil
	}
	names, err := cfg.selectTemplates(pod.Annotations)
	if err != nil {
		return nil, podError(pod, p, "metadata.annotations["+AnnotationTemplates+"]", err.Error())
	}
	if !slices.Contains(names, BuiltinTemplate) {
		out, notes, err := injectIstio(pod, cfg, p, names)
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				return notes, podError(pod, p, fe.field, fe.reason)
			}
			return notes, podError(pod, p, "spec", err.Error())
		}
		*pod = *out
		return notes, nil
	}
	if hasContainer(pod.Spec.Containers, ProxyContainerName) {
		// mizzen's own sidecar has nothing to customise: a pod that brings
		// its own istio-proxy keeps it, as before Istio's templates were
		// supported (a second one would make the pod invalid).
		return []string{"spec.containers[istio-proxy]: the pod has its own istio-proxy; template " + BuiltinTemplate + " leaves it as it is"}, nil
	}
	notes := builtinIgnores(pod.Annotations)
	return notes, injectBuiltin(pod, cfg, p, names)
}

// builtinHonours are the injection annotations mizzen's own sidecar reads.
var builtinHonours = []string{AnnotationInject, AnnotationStatus, AnnotationProxyCPU, AnnotationProxyMemory,
	AnnotationProxyCPULimit, AnnotationProxyMemoryLimit, AnnotationProxyImage, AnnotationLogLevel, AnnotationTemplates,
	AnnotationIncludeOutboundIPRanges, AnnotationExcludeOutboundIPRanges, AnnotationExcludeOutboundPorts,
	AnnotationIncludeInboundPorts, AnnotationExcludeInboundPorts}

// builtinIgnores names the pod's injection annotations (those Istio's
// templates and injector read) that mizzen's own sidecar does not apply.
func builtinIgnores(ann map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		domain, _, ok := strings.Cut(k, "/")
		if !ok || slices.Contains(builtinHonours, k) {
			continue
		}
		switch domain {
		case "sidecar.istio.io", "proxy.istio.io", "traffic.sidecar.istio.io", "status.sidecar.istio.io",
			"readiness.status.sidecar.istio.io", "inject.istio.io", "prometheus.istio.io":
			out = append(out, fmt.Sprintf("metadata.annotations[%s]: not applied by template %s (Istio's templates apply it)", k, BuiltinTemplate))
		}
	}
	return out
}

func podError(pod *corev1.Pod, p Params, field, reason string) *Error {
	ns := pod.Namespace
	if ns == "" {
		ns = p.Namespace
	}
	name := pod.Name
	if name == "" && pod.GenerateName != "" {
		name = pod.GenerateName + "*"
	}
	if name == "" {
		name = p.WorkloadName
	}
	return &Error{Namespace: ns, Name: name, Field: field, Reason: reason}
}

// injectBuiltin is mizzen's own sidecar (template mizzen-envoy): a stock
// Envoy bootstrapped to mizzen, for clusters without Istio's proxyv2; the
// other templates named with it are merged over it, without Istio's
// post-processing (there is no agent to take over probes or metrics).
func injectBuiltin(pod *corev1.Pod, cfg *Config, p Params, names []string) error {
	ns := pod.Namespace
	if ns == "" {
		ns = p.Namespace
	}
	name := pod.Name
	if name == "" && pod.GenerateName != "" {
		name = pod.GenerateName + "*"
	}
	fail := func(field, format string, args ...any) error {
		return &Error{Namespace: ns, Name: name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	s, err := podSettings(cfg, pod.Annotations)
	if err != nil {
		field, reason, _ := strings.Cut(err.Error(), ": ")
		return fail("metadata.annotations["+field+"]", "%s", reason)
	}

	for _, v := range pod.Spec.Volumes {
		if v.Name == TokenVolumeName || v.Name == RootCertVolumeName {
			return fail("spec.volumes", "the pod already has a volume named %s, which the sidecar needs", v.Name)
		}
	}

	out := pod.DeepCopy()
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	workload := p.WorkloadName
	if workload == "" {
		workload = workloadName(pod)
	}
	canonicalName, canonicalRevision := canonical(out.Labels, workload)
	setDefault(out.Labels, LabelTLSMode, "istio")
	setDefault(out.Labels, LabelCanonicalName, canonicalName)
	setDefault(out.Labels, LabelCanonicalRevision, canonicalRevision)

	proxy, err := proxyContainer(cfg, s, out.Labels, canonicalName, workload)
	if err != nil {
		return fail("spec.containers", "%v", err)
	}
	if len(out.Spec.Containers) > 0 {
		setDefault(out.Annotations, AnnotationDefaultContainer, out.Spec.Containers[0].Name)
		setDefault(out.Annotations, AnnotationDefaultLogs, out.Spec.Containers[0].Name)
	}
	// istio-init goes last among the init containers, as in Istio: the pod's
	// own init containers run before the capture exists, so they can reach
	// the network without a proxy that is not running yet.
	out.Spec.InitContainers = append(out.Spec.InitContainers, initContainer(cfg, s))
	out.Spec.Containers = append(out.Spec.Containers, proxy)
	out.Spec.Volumes = append(out.Spec.Volumes, volumes()...)

	// Envoy's Prometheus stats; a pod that scrapes its own app keeps its
	// annotations (there is no istio-agent to merge both).
	if _, ok := out.Annotations[AnnotationPrometheusScrape]; !ok {
		out.Annotations[AnnotationPrometheusScrape] = "true"
		out.Annotations[AnnotationPrometheusPort] = strconv.Itoa(bootstrap.StatsPort)
		out.Annotations[AnnotationPrometheusPath] = bootstrap.StatsPath
	}
	for k, v := range cfg.InjectedAnnotations {
		setDefault(out.Annotations, k, v)
	}
	st, _ := json.Marshal(status{
		InitContainers: []string{InitContainerName},
		Containers:     []string{ProxyContainerName},
		Volumes:        []string{TokenVolumeName, RootCertVolumeName},
		Revision:       cfg.Revision,
	})
	out.Annotations[AnnotationStatus] = string(st)

	if out, err = applyTemplates(cfg, out, p, names); err != nil {
		return fail("metadata.annotations["+AnnotationTemplates+"]", "%v", err)
	}
	*pod = *out
	return nil
}

// settings are the per-pod knobs, from annotations over the config.
type settings struct {
	proxyImage string
	logLevel   string
	resources  corev1.ResourceRequirements
	capture    Capture
}

var logLevels = []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}

// podSettings reads the pod's annotations; an error starts with the
// annotation's name and ": ".
func podSettings(cfg *Config, ann map[string]string) (settings, error) {
	s := settings{proxyImage: cfg.ProxyImage, logLevel: cfg.LogLevel, resources: *cfg.ProxyResources.DeepCopy()}
	if v := ann[AnnotationProxyImage]; v != "" {
		s.proxyImage = v
	}
	if v, ok := ann[AnnotationLogLevel]; ok {
		if !slices.Contains(logLevels, v) {
			return s, fmt.Errorf("%s: %q is not one of %s", AnnotationLogLevel, v, strings.Join(logLevels, ", "))
		}
		s.logLevel = v
	}
	for _, r := range []struct {
		annotation string
		list       *corev1.ResourceList
		name       corev1.ResourceName
	}{
		{AnnotationProxyCPU, &s.resources.Requests, corev1.ResourceCPU},
		{AnnotationProxyMemory, &s.resources.Requests, corev1.ResourceMemory},
		{AnnotationProxyCPULimit, &s.resources.Limits, corev1.ResourceCPU},
		{AnnotationProxyMemoryLimit, &s.resources.Limits, corev1.ResourceMemory},
	} {
		v, ok := ann[r.annotation]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() < 0 {
			return s, fmt.Errorf("%s: %q is not a quantity (e.g. 100m, 128Mi)", r.annotation, v)
		}
		if *r.list == nil {
			*r.list = corev1.ResourceList{}
		}
		(*r.list)[r.name] = q
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := s.resources.Requests[name]
		lim, hasLim := s.resources.Limits[name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			ann := AnnotationProxyCPU
			if name == corev1.ResourceMemory {
				ann = AnnotationProxyMemory
			}
			return s, fmt.Errorf("%s: request %s is above the limit %s", ann, req.String(), lim.String())
		}
	}
	s.capture = DefaultCapture()
	s.capture.OutboundIPRangesInclude = annotationOr(ann, AnnotationIncludeOutboundIPRanges, cfg.IncludeOutboundIPRanges)
	s.capture.OutboundIPRangesExclude = annotationOr(ann, AnnotationExcludeOutboundIPRanges, cfg.ExcludeOutboundIPRanges)
	s.capture.OutboundPortsExclude = annotationOr(ann, AnnotationExcludeOutboundPorts, cfg.ExcludeOutboundPorts)
	s.capture.InboundPorts = annotationOr(ann, AnnotationIncludeInboundPorts, cfg.IncludeInboundPorts)
	// The sidecar's own ports are never captured inbound: the kubelet's
	// readiness probe and Prometheus must reach Envoy itself.
	s.capture.InboundPortsExclude = joinList(fmt.Sprintf("%d,%d,%d", bootstrap.StatsPort, bootstrap.ReadinessPort, 15020),
		annotationOr(ann, AnnotationExcludeInboundPorts, cfg.ExcludeInboundPorts))
	if err := s.capture.check(); err != nil {
		return s, err
	}
	return s, nil
}

func annotationOr(ann map[string]string, key, def string) string {
	if v, ok := ann[key]; ok {
		return v
	}
	return def
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// cronJobName matches a CronJob's Job: <cronjob>-<scheduled time in minutes>.
var cronJobName = regexp.MustCompile(`^(.+)-\d{8,10}$`)

// workloadName is the name of the pod's workload, as Istio derives it: a
// Deployment's pods are owned by a ReplicaSet named <deployment>-<hash>; a
// CronJob's Jobs are <cronjob>-<timestamp>; other controllers name the
// workload themselves; a bare pod is its own workload.
func workloadName(pod *corev1.Pod) string {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
				return strings.TrimSuffix(ref.Name, "-"+h)
			}
		case "Job":
			if m := cronJobName.FindStringSubmatch(ref.Name); m != nil {
				return m[1]
			}
		}
		return ref.Name
	}
	if pod.Name != "" {
		return pod.Name
	}
	return strings.TrimSuffix(pod.GenerateName, "-")
}

// canonical is Istio's canonical service name and revision of a pod.
func canonical(l map[string]string, workload string) (string, string) {
	name := firstOf(l, LabelCanonicalName, "app.kubernetes.io/name", "app")
	if name == "" {
		name = workload
	}
	rev := firstOf(l, LabelCanonicalRevision, "app.kubernetes.io/version", "version")
	if rev == "" {
		rev = "latest"
	}
	return name, rev
}

func firstOf(l map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := l[k]; v != "" {
			return v
		}
	}
	return ""
}

// esc makes a literal safe in a container's args: the kubelet reads $(VAR)
// there, and $$ is its escape for "$".
func esc(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func ref(env string) string { return "$(" + env + ")" }

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

// proxyContainer is istio-proxy: a stock Envoy with mizzen's bootstrap inline.
// Every field the apiserver would default is set, so `mizzen inject` prints
// what the webhook's pod looks like once stored.
func proxyContainer(cfg *Config, s settings, podLabels map[string]string, canonicalName, workload string) (corev1.Container, error) {
	labels := map[string]any{}
	for k, v := range podLabels {
		labels[esc(k)] = esc(v)
	}
	ns := ref(EnvPodNamespace)
	boot, err := bootstrap.Sidecar(bootstrap.Options{
		NodeID:  "sidecar~" + ref(EnvInstanceIP) + "~" + ref(EnvPodName) + "." + ns + "~" + ns + ".svc.cluster.local",
		Cluster: esc(canonicalName) + "." + ns,
		Metadata: map[string]any{
			"NAMESPACE":         ns,
			"NAME":              ref(EnvPodName),
			"SERVICE_ACCOUNT":   ref(EnvServiceAccount),
			"INSTANCE_IPS":      ref(EnvInstanceIP),
			"LABELS":            labels,
			"CLUSTER_ID":        esc(cfg.ClusterID),
			"WORKLOAD_NAME":     esc(workload),
			"INTERCEPTION_MODE": "REDIRECT",
		},
		DiscoveryAddress: esc(cfg.DiscoveryAddress),
	})
	if err != nil {
		return corev1.Container{}, err
	}
	// Indented, so the pod spec stays readable (YAML shows it as a block).
	// JSON rather than YAML: every value the kubelet fills in sits inside
	// quotes, so a namespace named "123" or "on" stays a string.
	var bootJSON bytes.Buffer
	if err := json.Indent(&bootJSON, boot, "", "  "); err != nil {
		return corev1.Container{}, err
	}
	return corev1.Container{
		Name:    ProxyContainerName,
		Image:   s.proxyImage,
		Command: []string{"envoy"},
		Args: []string{
			"--config-yaml", bootJSON.String(),
			"--log-level", s.logLevel,
			"--concurrency", strconv.Itoa(cfg.Concurrency),
			// Hot restart needs shared memory between Envoy generations; in a
			// container the kubelet restarts Envoy instead.
			"--disable-hot-restart",
			"--drain-time-s", "45",
			"--drain-strategy", "immediate",
			"--local-address-ip-version", "v4",
		},
		Env: []corev1.EnvVar{
			fieldEnv(EnvPodName, "metadata.name"),
			fieldEnv(EnvPodNamespace, "metadata.namespace"),
			fieldEnv(EnvInstanceIP, "status.podIP"),
			fieldEnv(EnvServiceAccount, "spec.serviceAccountName"),
		},
		Ports: []corev1.ContainerPort{{Name: StatsPortName, ContainerPort: bootstrap.StatsPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: bootstrap.ReadinessPath, Port: intstr.FromInt32(bootstrap.ReadinessPort), Scheme: corev1.URISchemeHTTP,
			}},
			InitialDelaySeconds: 1, TimeoutSeconds: 3, PeriodSeconds: 2, SuccessThreshold: 1, FailureThreshold: 30,
		},
		Resources: s.resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: RootCertVolumeName, MountPath: dir(bootstrap.RootCertPath), ReadOnly: true},
			{Name: TokenVolumeName, MountPath: dir(bootstrap.TokenPath), ReadOnly: true},
		},
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          cfg.ImagePullPolicy,
		SecurityContext: &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			Privileged:               ptr(false),
			RunAsUser:                ptr(int64(ProxyUID)),
			RunAsGroup:               ptr(int64(ProxyGID)),
			RunAsNonRoot:             ptr(true),
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
		},
	}, nil
}

// initContainer is istio-init: `mizzen capture` with istio-iptables' flags,
// as root with NET_ADMIN and NET_RAW (and nothing else) to write the pod's
// nat table.
func initContainer(cfg *Config, s settings) corev1.Container {
	c := s.capture
	return corev1.Container{
		Name:    InitContainerName,
		Image:   cfg.InitImage,
		Command: []string{"mizzen", "capture"},
		Args: []string{
			"-p", strconv.Itoa(c.ProxyPort),
			"-z", strconv.Itoa(c.InboundCapturePort),
			"-u", c.ProxyUID,
			"-g", c.ProxyGID,
			"-m", "REDIRECT",
			"-i", c.OutboundIPRangesInclude,
			"-x", c.OutboundIPRangesExclude,
			"-b", c.InboundPorts,
			"-d", c.InboundPortsExclude,
			"-o", c.OutboundPortsExclude,
		},
		Resources:                *cfg.InitResources.DeepCopy(),
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          cfg.ImagePullPolicy,
		SecurityContext: &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
			Privileged:               ptr(false),
			RunAsUser:                ptr(int64(0)),
			RunAsGroup:               ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			ReadOnlyRootFilesystem:   ptr(false),
			AllowPrivilegeEscalation: ptr(false),
		},
	}
}

// volumes are the sidecar's credential (a projected service-account token
// for audience istio-ca, bound to the pod, refreshed by the kubelet) and the
// mesh root mizzen publishes in every namespace.
func volumes() []corev1.Volume {
	mode := int32(corev1.ProjectedVolumeSourceDefaultMode)
	exp := int64(TokenExpirationSeconds)
	return []corev1.Volume{
		{Name: TokenVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &exp, Path: base(bootstrap.TokenPath),
			}}},
			DefaultMode: &mode,
		}}},
		{Name: RootCertVolumeName, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap},
			DefaultMode:          ptr(int32(corev1.ConfigMapVolumeSourceDefaultMode)),
		}}},
	}
}

func dir(path string) string  { return path[:strings.LastIndexByte(path, '/')] }
func base(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

func ptr[T any](v T) *T { return &v }

// applyTemplates merges the other templates named with the built-in one
// into the pod, in order.
func applyTemplates(cfg *Config, pod *corev1.Pod, p Params, names []string) (*corev1.Pod, error) {
	for _, name := range names {
		if name == BuiltinTemplate {
			continue
		}
		t := cfg.parsed[name]
		if t == nil {
			return nil, fmt.Errorf("template %q cannot be used: %v", name, cfg.templateErrs[name])
		}
		deployMeta, typeMeta := workloadMeta(pod, p)
		mc := cfg.Mesh
		if mc == nil {
			mc = defaultMeshConfig()
		}
		out, _, err := render(t, &templateData{TypeMeta: typeMeta, DeploymentMeta: deployMeta, ObjectMeta: pod.ObjectMeta,
			Spec: pod.Spec, ProxyConfig: mc.GetDefaultConfig(), MeshConfig: mc, Values: cfg.Values, Revision: cfg.istioRevision(),
			ProxyUID: ProxyUID, ProxyGID: ProxyGID, ProxyImage: cfg.ProxyImage, ProxyInitImage: cfg.InitImage})
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", name, err)
		}
		if pod, err = overlay(pod, out); err != nil {
			return nil, fmt.Errorf("template %q: %w", name, err)
		}
	}
	return pod, nil
}
