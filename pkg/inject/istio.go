package inject

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// Istio's injection templates: the `sidecar`, `gateway` and custom templates
// of the istio-sidecar-injector ConfigMap are Go text/templates rendered
// against the pod (templateData, with the field names Istio's templates use),
// each result merged into the pod as a strategic merge patch, then the pod
// post-processed as istiod does: containers the user defined themselves win,
// Prometheus annotations point at the agent, probes go through the agent,
// the status annotation lists what was added, and istio-proxy/istio-init are
// put in their place.

// templateData is what an injection template sees; the field names are
// Istio's API for templates.
type templateData struct {
	TypeMeta                 metav1.TypeMeta
	DeploymentMeta           types.NamespacedName
	ObjectMeta               metav1.ObjectMeta
	Spec                     corev1.PodSpec
	ProxyConfig              *meshv1alpha1.ProxyConfig
	MeshConfig               *meshv1alpha1.MeshConfig
	Values                   map[string]any
	Revision                 string
	NativeSidecars           bool
	ProxyImage               string
	ProxyInitImage           string
	ProxyUID                 int64
	ProxyGID                 int64
	InboundTrafficPolicyMode string
	CompliancePolicy         string
}

// Annotations of the Istio path.
const (
	AnnotationProxyConfig      = "proxy.istio.io/config"
	AnnotationProxyOverrides   = "proxy.istio.io/overrides"
	AnnotationProxyImageType   = "sidecar.istio.io/proxyImageType"
	AnnotationInterceptionMode = "sidecar.istio.io/interceptionMode"
	AnnotationNativeSidecar    = "sidecar.istio.io/nativeSidecar"
	AnnotationPrometheusMerge  = "prometheus.istio.io/merge-metrics"
	AnnotationScrapeTargets    = "prometheus.istio.io/scrape-targets"
	AnnotationSecurePort       = "prometheus.istio.io/secure-port"
	ValidationContainerName    = "istio-validation"
	enableCoreDumpName         = "enable-core-dump"
	// autoImage in a user's own istio-proxy container means "the injected
	// image".
	autoImage    = "auto"
	envClusterID = "ISTIO_META_CLUSTER_ID"
	envNetwork   = "ISTIO_META_NETWORK"
	labelNetwork = "topology.istio.io/network"
)

// parseTemplate parses one template of the ConfigMap.
func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(templateFuncs(nil)).Parse(text)
}

// workloadMeta is the pod's workload as Istio's templates see it: kind,
// apiVersion, namespace/name.
func workloadMeta(pod *corev1.Pod, p Params) (types.NamespacedName, metav1.TypeMeta) {
	if p.WorkloadKind != "" {
		return types.NamespacedName{Namespace: p.WorkloadNamespace, Name: p.WorkloadName},
			metav1.TypeMeta{Kind: p.WorkloadKind, APIVersion: p.WorkloadAPIVersion}
	}
	ns := pod.Namespace
	if ns == "" {
		ns = p.Namespace
	}
	meta := types.NamespacedName{Namespace: ns, Name: pod.Name}
	tm := metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	// Only a pod whose name is generated belongs to a controller.
	if pod.GenerateName != "" {
		for _, ref := range pod.OwnerReferences {
			if ref.Controller == nil || !*ref.Controller {
				continue
			}
			tm = metav1.TypeMeta{Kind: ref.Kind, APIVersion: ref.APIVersion}
			meta.Name = ref.Name
			hash := pod.Labels["pod-template-hash"]
			switch {
			case ref.Kind == "ReplicaSet" && hash != "" && strings.HasSuffix(ref.Name, hash):
				meta.Name, tm.Kind = strings.TrimSuffix(ref.Name, "-"+hash), "Deployment"
			case ref.Kind == "ReplicaSet" && pod.Labels["rollouts-pod-template-hash"] != "" &&
				strings.HasSuffix(ref.Name, pod.Labels["rollouts-pod-template-hash"]):
				meta.Name = strings.TrimSuffix(ref.Name, "-"+pod.Labels["rollouts-pod-template-hash"])
				tm = metav1.TypeMeta{Kind: "Rollout", APIVersion: "v1alpha1"}
			case ref.Kind == "ReplicationController" && pod.Labels["deploymentconfig"] != "":
				meta.Name, tm.Kind = pod.Labels["deploymentconfig"], "DeploymentConfig"
			case ref.Kind == "Job":
				if m := cronJobName.FindStringSubmatch(ref.Name); m != nil {
					meta.Name = m[1]
					tm = metav1.TypeMeta{Kind: "CronJob", APIVersion: "batch/v1"}
				}
			}
			break
		}
	}
	if meta.Name == "" {
		meta.Name = pod.Name
	}
	return meta, tm
}

var knownImageTypes = []string{"distroless", "debug"}

// imageURL is <hub>/<name>:<tag>, the tag's -distroless/-debug suffix
// replaced by the image type ("default" for none).
func imageURL(hub, name, tag, imageType string) string {
	if imageType != "" {
		for _, t := range knownImageTypes {
			if strings.HasSuffix(tag, "-"+t) {
				tag = strings.TrimSuffix(tag, "-"+t)
				break
			}
		}
		if imageType != "default" {
			tag += "-" + imageType
		}
	}
	return hub + "/" + name + ":" + tag
}

// valuesPath walks the values map; nil when any step is missing.
func valuesPath(v map[string]any, path ...string) any {
	var cur any = v
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func valuesString(v map[string]any, path ...string) string {
	switch t := valuesPath(v, path...).(type) {
	case nil:
		return ""
	case string:
		return t
	default:
		return fmt.Sprint(t)
	}
}

func valuesBool(v map[string]any, path ...string) bool {
	switch t := valuesPath(v, path...).(type) {
	case bool:
		return t
	case string:
		b, _ := strconv.ParseBool(t)
		return b
	}
	return false
}

// proxyImages are .ProxyImage and .ProxyInitImage.
func proxyImages(values map[string]any, pc *meshv1alpha1.ProxyConfig, ann map[string]string) (string, string) {
	hub := valuesString(values, "global", "hub")
	tag := valuesString(values, "global", "tag")
	variant := valuesString(values, "global", "variant")
	proxyName := valuesString(values, "global", "proxy", "image")
	if proxyName == "" {
		proxyName = "proxyv2"
	}
	initName := valuesString(values, "global", "proxy_init", "image")
	if initName == "" {
		initName = "proxyv2"
	}
	proxyType, initType := variant, variant
	if t := pc.GetImage().GetImageType(); t != "" {
		proxyType = t
	}
	if t, ok := ann[AnnotationProxyImageType]; ok {
		proxyType, initType = t, t
	}
	return imageURL(hub, proxyName, tag, proxyType), imageURL(hub, initName, tag, initType)
}

// render runs one template and returns its YAML.
func render(t *template.Template, data *templateData) ([]byte, []string, error) {
	w := &warnings{}
	// Parsed with placeholder functions; bind this run's warnings.
	t, err := t.Clone()
	if err != nil {
		return nil, nil, err
	}
	t.Funcs(templateFuncs(w))
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, w.list, err
	}
	return buf.Bytes(), w.list, nil
}

// overlay merges a rendered template (YAML) into the pod with a strategic
// merge patch: containers merge by name, lists of volumes by name, and so on.
func overlay(pod *corev1.Pod, patchYAML []byte) (*corev1.Pod, error) {
	cur, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	patch, err := yaml.YAMLToJSON(patchYAML)
	if err != nil {
		return nil, fmt.Errorf("the rendered template is not YAML: %w", err)
	}
	if s := strings.TrimSpace(string(patch)); s == "null" || s == "" {
		return pod.DeepCopy(), nil
	}
	merged, err := strategicpatch.StrategicMergePatch(cur, patch, corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("merging the rendered template: %w", err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(merged, out); err != nil {
		return nil, fmt.Errorf("the rendered template does not give a Pod: %w", err)
	}
	return out, nil
}

// injectIstio injects with Istio's templates named in names.
func injectIstio(pod *corev1.Pod, cfg *Config, p Params, names []string) (*corev1.Pod, []string, error) {
	var notes []string
	if err := checkIstioAnnotations(pod.Annotations); err != nil {
		return nil, nil, err
	}
	mc := cfg.Mesh
	if mc == nil {
		mc = defaultMeshConfig()
	}
	pc := mc.GetDefaultConfig()
	if y, ok := pod.Annotations[AnnotationProxyConfig]; ok {
		var err error
		if pc, err = mergeProxyConfig(pc, y); err != nil {
			return nil, nil, &fieldError{"metadata.annotations[" + AnnotationProxyConfig + "]", err.Error()}
		}
	}
	values := cfg.Values
	if values == nil {
		values = map[string]any{}
	}
	native := cfg.NativeSidecars
	switch pod.Annotations[AnnotationNativeSidecar] {
	case "true":
		native = true
	case "false":
		native = false
	}
	// Cluster and network: the values', overridden by the webhook URL's
	// (a remote cluster's injector path), the network by the pod's own
	// label. The agent gets them as env, set last (istiod's order).
	envs := maps.Clone(p.ProxyEnvs)
	if envs == nil {
		envs = map[string]string{}
	}
	cluster := cmp.Or(envs[envClusterID], valuesString(values, "global", "multiCluster", "clusterName"))
	network := cmp.Or(envs[envNetwork], valuesString(values, "global", "network"))
	if n, ok := pod.Labels[labelNetwork]; ok {
		network = n
	}
	if cluster != "" {
		envs[envClusterID] = cluster
	}
	if network != "" {
		envs[envNetwork] = network
	}
	deployMeta, typeMeta := workloadMeta(pod, p)
	proxyImage, initImage := proxyImages(values, pc, pod.Annotations)
	inboundMode := "passthrough"
	if mc.GetInboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_InboundTrafficPolicy_LOCALHOST {
		inboundMode = "localhost"
	}
	data := &templateData{
		TypeMeta:       typeMeta,
		DeploymentMeta: deployMeta,
		ObjectMeta:     *pod.ObjectMeta.DeepCopy(),
		Spec:           *pod.Spec.DeepCopy(),
		ProxyConfig:    pc,
		MeshConfig:     mc,
		Values:         values,
		Revision:       cfg.istioRevision(),
		// NativeSidecars is the mesh-wide switch; the template reads the
		// pod's annotation itself.
		NativeSidecars:           cfg.NativeSidecars,
		ProxyImage:               proxyImage,
		ProxyInitImage:           initImage,
		ProxyUID:                 ProxyUID,
		ProxyGID:                 ProxyGID,
		InboundTrafficPolicyMode: inboundMode,
		CompliancePolicy:         cfg.CompliancePolicy,
	}

	original := pod
	merged := pod.DeepCopy()
	tmplPod := &corev1.Pod{}
	for _, name := range names {
		t := cfg.parsed[name]
		if t == nil {
			if err := cfg.templateErrs[name]; err != nil {
				return nil, nil, fmt.Errorf("template %q cannot be used: %w", name, err)
			}
			return nil, nil, fmt.Errorf("no template %q in the injector config (have %s)", name, strings.Join(cfg.templateNames(), ", "))
		}
		out, warns, err := render(t, data)
		for _, w := range warns {
			notes = append(notes, fmt.Sprintf("template %q: %s", name, w))
		}
		if err != nil {
			return nil, notes, fmt.Errorf("template %q: %w", name, err)
		}
		if tmplPod, err = overlay(tmplPod, out); err != nil {
			return nil, notes, fmt.Errorf("template %q: %w", name, err)
		}
		// With native sidecars the template puts istio-proxy among the init
		// containers; a user's own istio-proxy (customisation) moves there
		// too, so the two merge.
		if native && hasContainer(tmplPod.Spec.InitContainers, ProxyContainerName) && hasContainer(merged.Spec.Containers, ProxyContainerName) {
			var c corev1.Container
			merged.Spec.Containers, c = removeContainer(merged.Spec.Containers, ProxyContainerName)
			merged.Spec.InitContainers = append(merged.Spec.InitContainers, c)
		}
		if merged, err = overlay(merged, out); err != nil {
			return nil, notes, fmt.Errorf("template %q: %w", name, err)
		}
	}
	var err error
	if merged, err = reapplyUserContainers(merged, original, tmplPod, pc); err != nil {
		return nil, notes, err
	}
	if merged.Annotations == nil {
		merged.Annotations = map[string]string{}
	}
	if merged.Labels == nil {
		merged.Labels = map[string]string{}
	}
	if proxy := findContainer(merged, ProxyContainerName); proxy != nil && len(envs) > 0 {
		var env []corev1.EnvVar
		for _, e := range proxy.Env {
			if _, ok := envs[e.Name]; !ok {
				env = append(env, e)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(envs)) {
			env = append(env, corev1.EnvVar{Name: k, Value: envs[k]})
		}
		proxy.Env = env
	}
	if err := applyPrometheusMerge(merged, mc); err != nil {
		return nil, notes, err
	}
	applySecurePort(merged)
	if err := applyProbeRewrite(merged, cfg.rewriteProbesDefault(), mc.GetDefaultConfig().GetStatusPort()); err != nil {
		return nil, notes, err
	}
	if n, ok := envs[envNetwork]; ok {
		merged.Labels[labelNetwork] = n
	}
	merged.Annotations[AnnotationStatus] = injectionStatus(tmplPod.Spec, cfg.istioRevision())
	for k, v := range cfg.InjectedAnnotations {
		merged.Annotations[k] = v
	}
	reorder(merged, pc, values)
	return merged, notes, nil
}

// fieldError is an error about one field of the pod.
type fieldError struct{ field, reason string }

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func hasContainer(cs []corev1.Container, name string) bool {
	return slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name })
}

func removeContainer(cs []corev1.Container, name string) ([]corev1.Container, corev1.Container) {
	var out []corev1.Container
	var found corev1.Container
	for _, c := range cs {
		if c.Name == name {
			found = c
			continue
		}
		out = append(out, c)
	}
	return out, found
}

// reapplyUserContainers lets a pod customise what the template injects: a
// container of the pod with the name of an injected one (typically its own
// istio-proxy with other resources) is merged over the injected one, and
// recorded in proxy.istio.io/overrides. Image "auto" keeps the
// injected image.
func reapplyUserContainers(merged, original, tmplPod *corev1.Pod, pc *meshv1alpha1.ProxyConfig) (*corev1.Pod, error) {
	type overrides struct {
		Containers     []corev1.Container `json:"containers,omitempty"`
		InitContainers []corev1.Container `json:"initContainers,omitempty"`
	}
	var ov overrides
	for _, c := range tmplPod.Spec.Containers {
		var mine *corev1.Container
		for i := range original.Spec.Containers {
			if original.Spec.Containers[i].Name == c.Name {
				mine = original.Spec.Containers[i].DeepCopy()
			}
		}
		if mine == nil {
			continue
		}
		if mine.Image == autoImage {
			mine.Image = ""
		}
		ov.Containers = append(ov.Containers, *mine)
		patch, _ := json.Marshal(corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{*mine}}})
		var err error
		if merged, err = overlayJSON(merged, patch); err != nil {
			return nil, fmt.Errorf("spec.containers[%s]: %w", c.Name, err)
		}
	}
	for _, c := range tmplPod.Spec.InitContainers {
		mine := findContainer(original, c.Name)
		if mine == nil {
			continue
		}
		mine = mine.DeepCopy()
		if mine.Image == autoImage {
			mine.Image = ""
		}
		ov.InitContainers = append(ov.InitContainers, *mine)
		patch, _ := json.Marshal(corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{}, InitContainers: []corev1.Container{*mine}}})
		var err error
		if merged, err = overlayJSON(merged, patch); err != nil {
			return nil, fmt.Errorf("spec.initContainers[%s]: %w", c.Name, err)
		}
	}
	if len(ov.Containers) > 0 || len(ov.InitContainers) > 0 {
		b, _ := json.Marshal(ov)
		if merged.Annotations == nil {
			merged.Annotations = map[string]string{}
		}
		merged.Annotations[AnnotationProxyOverrides] = string(b)
	}
	adjustInitUser(merged, original, pc)
	return merged, nil
}

func overlayJSON(pod *corev1.Pod, patch []byte) (*corev1.Pod, error) {
	cur, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	merged, err := strategicpatch.StrategicMergePatch(cur, patch, corev1.Pod{})
	if err != nil {
		return nil, err
	}
	out := &corev1.Pod{}
	return out, json.Unmarshal(merged, out)
}

// adjustInitUser follows a user's own istio-proxy runAsUser/runAsGroup: the
// capture must let that uid's traffic out, so istio-init's -u follows it
// (istio-validation runs as it too); in TPROXY mode the proxy runs as root.
func adjustInitUser(merged, original *corev1.Pod, pc *meshv1alpha1.ProxyConfig) {
	user := findContainer(original, ProxyContainerName)
	if user == nil || user.SecurityContext == nil || (user.SecurityContext.RunAsUser == nil && user.SecurityContext.RunAsGroup == nil) {
		return
	}
	var init *corev1.Container
	for _, n := range []string{InitContainerName, ValidationContainerName} {
		for i := range merged.Spec.InitContainers {
			if init == nil && merged.Spec.InitContainers[i].Name == n {
				init = &merged.Spec.InitContainers[i]
			}
		}
	}
	if init == nil {
		return
	}
	tproxy := pc.GetInterceptionMode() == meshv1alpha1.ProxyConfig_TPROXY || merged.Annotations[AnnotationInterceptionMode] == "TPROXY"
	if tproxy && user.SecurityContext.RunAsUser != nil {
		if sc := findContainer(merged, ProxyContainerName); sc != nil && sc.SecurityContext != nil && sc.SecurityContext.RunAsUser != nil {
			*sc.SecurityContext.RunAsUser = 0
		}
	}
	if !tproxy && init.Name == ValidationContainerName {
		if init.SecurityContext == nil {
			init.SecurityContext = &corev1.SecurityContext{}
		}
		if user.SecurityContext.RunAsUser != nil {
			init.SecurityContext.RunAsUser = user.SecurityContext.RunAsUser
		}
		if user.SecurityContext.RunAsGroup != nil {
			init.SecurityContext.RunAsGroup = user.SecurityContext.RunAsGroup
		}
	}
	if user.SecurityContext.RunAsUser == nil || *user.SecurityContext.RunAsUser == 0 {
		return
	}
	for i := 0; i+1 < len(init.Args); i++ {
		if init.Args[i] == "-u" {
			init.Args[i+1] = strconv.FormatInt(*user.SecurityContext.RunAsUser, 10)
			return
		}
	}
}

// promKey is an annotation name as Prometheus sees it (non-alphanumerics as
// _), so prometheus.io/port and prometheus_io_port are the same key.
var promInvalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)

func promKey(k string) string { return promInvalid.ReplaceAllString(k, "_") }

// applyPrometheusMerge points a scraped pod's prometheus.io annotations at
// the agent (which merges the app's metrics with Envoy's) and hands the
// app's own scrape settings to the agent in ISTIO_PROMETHEUS_ANNOTATIONS.
func applyPrometheusMerge(pod *corev1.Pod, mc *meshv1alpha1.MeshConfig) error {
	scrape := true
	merge := true
	if mc.GetEnablePrometheusMerge() != nil {
		merge = mc.GetEnablePrometheusMerge().GetValue()
	}
	if v, ok := pod.Annotations[AnnotationPrometheusMerge]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &fieldError{"metadata.annotations[" + AnnotationPrometheusMerge + "]", fmt.Sprintf("%q is not true or false", v)}
		}
		merge = b
	}
	type scrapeConfig struct {
		Scrape string `json:"scrape"`
		Path   string `json:"path"`
		Port   string `json:"port"`
	}
	var sc scrapeConfig
	for k, v := range pod.Annotations {
		switch promKey(k) {
		case "prometheus_io_scrape":
			sc.Scrape = v
			if b, err := strconv.ParseBool(v); err == nil {
				scrape = b
			}
		case "prometheus_io_port":
			sc.Port = v
		case "prometheus_io_path":
			sc.Path = v
		case "prometheus_istio_io_scrape_targets":
			return &fieldError{"metadata.annotations[" + k + "]", "scrape targets are not supported by mizzen's injector; use prometheus.io/port and prometheus.io/path"}
		}
	}
	if !scrape || !merge {
		return nil
	}
	target := strconv.Itoa(int(mc.GetDefaultConfig().GetStatusPort()))
	if sc.Port == target {
		return nil // already the agent's (a pod injected before)
	}
	if sc.Port != "" {
		n, err := strconv.Atoi(sc.Port)
		if err != nil || n < 1 || n > 65535 {
			return &fieldError{"metadata.annotations[prometheus.io/port]", fmt.Sprintf("%q is not a port", sc.Port)}
		}
		if strconv.Itoa(n) == target {
			return &fieldError{"metadata.annotations[prometheus.io/port]", "port " + sc.Port + " is the agent's own"}
		}
	}
	if proxy := findContainer(pod, ProxyContainerName); proxy != nil && sc != (scrapeConfig{}) {
		b, _ := json.Marshal(sc)
		proxy.Env = append(proxy.Env, corev1.EnvVar{Name: "ISTIO_PROMETHEUS_ANNOTATIONS", Value: string(b)})
	}
	for k := range pod.Annotations {
		switch promKey(k) {
		case "prometheus_io_scrape", "prometheus_io_port", "prometheus_io_path", "prometheus_istio_io_scrape_targets":
			delete(pod.Annotations, k)
		}
	}
	pod.Annotations[AnnotationPrometheusPort] = target
	pod.Annotations[AnnotationPrometheusPath] = "/stats/prometheus"
	pod.Annotations[AnnotationPrometheusScrape] = "true"
	return nil
}

// applySecurePort advertises the agent's TLS metrics port when the proxy
// serves one (ENVOY_SECURE_MERGED_METRICS_PORT) and the pod does not say.
func applySecurePort(pod *corev1.Pod) {
	for k := range pod.Annotations {
		if promKey(k) == "prometheus_istio_io_secure_port" {
			return
		}
	}
	proxy := findContainer(pod, ProxyContainerName)
	if proxy == nil {
		return
	}
	for _, e := range proxy.Env {
		if e.Name == "ENVOY_SECURE_MERGED_METRICS_PORT" && e.Value != "" && e.Value != "0" {
			pod.Annotations[AnnotationSecurePort] = e.Value
			return
		}
	}
}

// injectionStatus is sidecar.istio.io/status: everything the templates
// added.
func injectionStatus(spec corev1.PodSpec, revision string) string {
	var st status
	for _, c := range spec.InitContainers {
		st.InitContainers = append(st.InitContainers, c.Name)
	}
	for _, c := range spec.Containers {
		st.Containers = append(st.Containers, c.Name)
	}
	for _, v := range spec.Volumes {
		st.Volumes = append(st.Volumes, v.Name)
	}
	for _, s := range spec.ImagePullSecrets {
		st.ImagePullSecrets = append(st.ImagePullSecrets, s.Name)
	}
	st.Revision = revision
	if st.Revision == "" {
		st.Revision = "default"
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// reorder puts istio-proxy last among the containers (so kubectl exec and
// logs default to the app), or first when the app must wait for the proxy
// (holdApplicationUntilProxyStarts). As a native sidecar it runs right
// after istio-init/istio-validation, before the app's init containers, which
// then are in the mesh; otherwise istio-init runs last, so the app's init
// containers run before the capture exists.
func reorder(pod *corev1.Pod, pc *meshv1alpha1.ProxyConfig, values map[string]any) {
	hold := pc.GetHoldApplicationUntilProxyStarts().GetValue() ||
		valuesBool(values, "global", "proxy", "holdApplicationUntilProxyStarts")
	if hold {
		pod.Spec.Containers = moveFirst(pod.Spec.Containers, ProxyContainerName)
	} else {
		pod.Spec.Containers = moveLast(pod.Spec.Containers, ProxyContainerName)
	}
	ics := pod.Spec.InitContainers
	if hasContainer(ics, ProxyContainerName) {
		ics = moveFirst(ics, enableCoreDumpName)
		ics = moveFirst(ics, ProxyContainerName)
		ics = moveFirst(ics, ValidationContainerName)
		ics = moveFirst(ics, InitContainerName)
	} else {
		ics = moveFirst(ics, ValidationContainerName)
		ics = moveLast(ics, InitContainerName)
		ics = moveLast(ics, enableCoreDumpName)
	}
	pod.Spec.InitContainers = ics
}

func moveFirst(cs []corev1.Container, name string) []corev1.Container {
	if !hasContainer(cs, name) {
		return cs
	}
	rest, c := removeContainer(cs, name)
	return append([]corev1.Container{c}, rest...)
}

func moveLast(cs []corev1.Container, name string) []corev1.Container {
	if !hasContainer(cs, name) {
		return cs
	}
	rest, c := removeContainer(cs, name)
	return append(rest, c)
}

// checkIstioAnnotations refuses values of the annotations the templates
// turn into flags and numbers, naming the annotation, before a template
// renders them into a pod that cannot start.
func checkIstioAnnotations(ann map[string]string) error {
	bad := func(k, format string, args ...any) error {
		return &fieldError{"metadata.annotations[" + k + "]", fmt.Sprintf(format, args...)}
	}
	if v, ok := ann[AnnotationInterceptionMode]; ok && v != "REDIRECT" && v != "TPROXY" && v != "NONE" {
		return bad(AnnotationInterceptionMode, "%q is not REDIRECT, TPROXY or NONE", v)
	}
	for _, k := range []string{AnnotationExcludeOutboundPorts, AnnotationExcludeInboundPorts, "traffic.sidecar.istio.io/includeOutboundPorts"} {
		if v, ok := ann[k]; ok {
			if _, err := parsePorts(v); err != nil {
				return bad(k, "%v", err)
			}
		}
	}
	if v, ok := ann[AnnotationIncludeInboundPorts]; ok && strings.TrimSpace(v) != "*" {
		if _, err := parsePorts(v); err != nil {
			return bad(AnnotationIncludeInboundPorts, "%v", err)
		}
	}
	for _, k := range []string{AnnotationIncludeOutboundIPRanges, AnnotationExcludeOutboundIPRanges} {
		v, ok := ann[k]
		if !ok || strings.TrimSpace(v) == "*" {
			continue
		}
		for _, c := range splitList(v) {
			if _, _, err := net.ParseCIDR(c); err != nil {
				return bad(k, "%q is not a CIDR", c)
			}
		}
	}
	if v, ok := ann[AnnotationStatusPort]; ok {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 65535 {
			return bad(AnnotationStatusPort, "%q is not a port", v)
		}
	}
	for _, k := range []string{"readiness.status.sidecar.istio.io/initialDelaySeconds", "readiness.status.sidecar.istio.io/periodSeconds", "readiness.status.sidecar.istio.io/failureThreshold"} {
		if v, ok := ann[k]; ok {
			if n, err := strconv.Atoi(v); err != nil || n < 0 {
				return bad(k, "%q is not a whole number", v)
			}
		}
	}
	for _, k := range []string{AnnotationRewriteAppProbers, AnnotationNativeSidecar} {
		if v, ok := ann[k]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				return bad(k, "%q is not true or false", v)
			}
		}
	}
	return nil
}
