// Package inject adds mizzen's sidecar to a Pod, as Istio's sidecar injector
// does: an istio-init init container that installs the traffic capture
// (`mizzen capture`, istio-iptables' rules), an istio-proxy container running
// a stock Envoy bootstrapped to mizzen's secure port (see pkg/bootstrap), the
// volumes holding its credential and the mesh root, and the labels and
// annotations Istio sets. It is a pure function of the Pod, the namespace's
// labels and the Config: the admission webhook and `mizzen inject` call the
// same code, so they produce the same Pod.
package inject

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/pkg/bootstrap"
)

// Where Istio keeps the injector's configuration, and the keys in it.
const (
	ConfigMapName = "istio-sidecar-injector"
	// ValuesKey holds Helm-style values (JSON), as in Istio: global.hub,
	// global.tag, global.proxy.*, global.proxy_init.*.
	ValuesKey = "values"
	// ConfigKey holds the injection config (YAML), as in Istio: policy,
	// alwaysInjectSelector, neverInjectSelector, injectedAnnotations,
	// templates, defaultTemplates.
	ConfigKey = "config"
)

// Policy is the injector's default for pods that do not ask either way.
type Policy string

const (
	// PolicyEnabled injects pods of enabled namespaces unless they opt out.
	PolicyEnabled Policy = "enabled"
	// PolicyDisabled injects only pods that ask with sidecar.istio.io/inject.
	PolicyDisabled Policy = "disabled"
)

// Defaults. The proxy is a stock Envoy of the version mizzen is tested with;
// the init container is mizzen's own image, which has `mizzen capture` and
// iptables.
const (
	DefaultProxyImage  = "envoyproxy/envoy:v1.40.0"
	DefaultInitImage   = "ghcr.io/mizzenmesh/mizzen:latest"
	DefaultClusterID   = "Kubernetes"
	DefaultRevision    = "default"
	DefaultLogLevel    = "warning"
	DefaultConcurrency = 2
	// ProxyUID and ProxyGID are istio-proxy's user and group; the capture
	// rules let their traffic through.
	ProxyUID = 1337
	ProxyGID = 1337
)

// Config is what the injector needs to know besides the Pod.
type Config struct {
	Policy Policy
	// AlwaysInjectSelector and NeverInjectSelector override the policy for
	// pods whose labels match (never wins), unless the pod itself says.
	AlwaysInjectSelector []metav1.LabelSelector
	NeverInjectSelector  []metav1.LabelSelector
	// InjectedAnnotations are added to every injected pod.
	InjectedAnnotations map[string]string
	// Templates are Istio's injection templates by name: Go text/templates
	// rendering Pod fragments (Istio's `sidecar` and `gateway`, or plain
	// YAML), merged into the pod with a strategic merge patch. Those named
	// in DefaultTemplates, or in the pod's inject.istio.io/templates
	// annotation, apply (Aliases name several at once). BuiltinTemplate
	// (mizzen-envoy) is mizzen's own sidecar; "sidecar" names it too when
	// the config has no template of that name.
	Templates        map[string]string
	DefaultTemplates []string
	Aliases          map[string][]string
	// Values are the Helm values the templates read (.Values), as given.
	Values map[string]any
	// Mesh is the mesh config over Istio's defaults (.MeshConfig; its
	// defaultConfig is .ProxyConfig).
	Mesh *meshv1alpha1.MeshConfig
	// NativeSidecars runs istio-proxy as a Kubernetes native sidecar (an
	// init container with restartPolicy Always), as istiod does with
	// ENABLE_NATIVE_SIDECARS (values.pilot.env.ENABLE_NATIVE_SIDECARS).
	NativeSidecars bool
	// CompliancePolicy is istiod's COMPLIANCE_POLICY (values.pilot.env).
	CompliancePolicy string
	// Notes are what the config asks for that mizzen does not apply, for
	// `analyze` and the logs; nothing is dropped without one.
	Notes []string

	parsed       map[string]*template.Template
	templateErrs map[string]error

	ProxyImage      string
	InitImage       string
	ImagePullPolicy corev1.PullPolicy
	ProxyResources  corev1.ResourceRequirements
	InitResources   corev1.ResourceRequirements
	// LogLevel is Envoy's --log-level.
	LogLevel string
	// Concurrency is Envoy's worker count (MeshConfig defaultConfig.concurrency).
	Concurrency int
	// DiscoveryAddress is mizzen's secure port as pods reach it
	// (MeshConfig defaultConfig.discoveryAddress).
	DiscoveryAddress string
	// ClusterID is the node metadata CLUSTER_ID.
	ClusterID string
	// Revision goes into sidecar.istio.io/status and the canonical revision.
	Revision string

	// Capture defaults, overridable per pod by traffic.sidecar.istio.io/*
	// annotations.
	IncludeOutboundIPRanges string
	ExcludeOutboundIPRanges string
	ExcludeOutboundPorts    string
	IncludeInboundPorts     string
	ExcludeInboundPorts     string
}

// DefaultConfig is the injector's configuration without a ConfigMap.
func DefaultConfig() *Config {
	return &Config{
		Policy:                  PolicyEnabled,
		DefaultTemplates:        []string{"sidecar"},
		ProxyImage:              DefaultProxyImage,
		InitImage:               DefaultInitImage,
		ImagePullPolicy:         corev1.PullIfNotPresent,
		ProxyResources:          resources("100m", "128Mi", "2000m", "1024Mi"),
		InitResources:           resources("10m", "40Mi", "2000m", "1024Mi"),
		LogLevel:                DefaultLogLevel,
		Concurrency:             DefaultConcurrency,
		DiscoveryAddress:        bootstrap.DefaultDiscoveryAddress,
		ClusterID:               DefaultClusterID,
		Revision:                DefaultRevision,
		IncludeOutboundIPRanges: "*",
		IncludeInboundPorts:     "*",
	}
}

func resources(cpuReq, memReq, cpuLim, memLim string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuReq), corev1.ResourceMemory: resource.MustParse(memReq)},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuLim), corev1.ResourceMemory: resource.MustParse(memLim)},
	}
}

// values is the part of Istio's Helm values the injector reads. Unknown keys
// are ignored: Istio's own values carry many that mean nothing here.
type values struct {
	Global struct {
		Hub             string `json:"hub"`
		Tag             any    `json:"tag"` // Istio allows a number
		ImagePullPolicy string `json:"imagePullPolicy"`
		Proxy           struct {
			Image                string                       `json:"image"`
			Resources            *corev1.ResourceRequirements `json:"resources"`
			LogLevel             string                       `json:"logLevel"`
			IncludeIPRanges      *string                      `json:"includeIPRanges"`
			ExcludeIPRanges      *string                      `json:"excludeIPRanges"`
			ExcludeOutboundPorts *string                      `json:"excludeOutboundPorts"`
			IncludeInboundPorts  *string                      `json:"includeInboundPorts"`
			ExcludeInboundPorts  *string                      `json:"excludeInboundPorts"`
		} `json:"proxy"`
		ProxyInit struct {
			Image     string                       `json:"image"`
			Resources *corev1.ResourceRequirements `json:"resources"`
		} `json:"proxy_init"`
		MultiCluster struct {
			ClusterName string `json:"clusterName"`
		} `json:"multiCluster"`
	} `json:"global"`
	Revision string `json:"revision"`
}

// injectionConfig is the `config` key. Unknown keys are errors: a misspelt
// policy must not silently inject (or stop injecting) a whole cluster.
type injectionConfig struct {
	Policy               Policy                 `json:"policy"`
	AlwaysInjectSelector []metav1.LabelSelector `json:"alwaysInjectSelector"`
	NeverInjectSelector  []metav1.LabelSelector `json:"neverInjectSelector"`
	InjectedAnnotations  map[string]string      `json:"injectedAnnotations"`
	Templates            map[string]string      `json:"templates"`
	DefaultTemplates     []string               `json:"defaultTemplates"`
	Aliases              map[string][]string    `json:"aliases"`
	// Template is Istio's old single-template form; istiod ignores it, and
	// Istio's chart sets it to a sentinel that fails on istiods too old for
	// `templates`.
	Template string `json:"template"`
}

// BuiltinTemplate names mizzen's own plain-Envoy sidecar.
const BuiltinTemplate = "mizzen-envoy"

// chartTemplateSentinel is what Istio's chart puts in `template`.
const chartTemplateSentinel = "{{ Template_Version_And_Istio_Version_Mismatched_Check_Installation }}"

// FromConfigMap reads the injector ConfigMap's data (keys values and config)
// and the mesh config (the `mesh` key of ConfigMap istio; empty for none)
// over the defaults. Errors name the key and field.
func FromConfigMap(data map[string]string, meshYAML string) (*Config, error) {
	c := DefaultConfig()
	if raw := strings.TrimSpace(data[ValuesKey]); raw != "" {
		var v values
		if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fmt.Errorf("%s: %w", ValuesKey, err)
		}
		if err := c.applyValues(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", ValuesKey, err)
		}
		if err := yaml.Unmarshal([]byte(raw), &c.Values); err != nil {
			return nil, fmt.Errorf("%s: %w", ValuesKey, err)
		}
		c.NativeSidecars = valuesBool(c.Values, "pilot", "env", "ENABLE_NATIVE_SIDECARS")
		c.CompliancePolicy = valuesString(c.Values, "pilot", "env", "COMPLIANCE_POLICY")
	}
	if raw := strings.TrimSpace(data[ConfigKey]); raw != "" {
		var ic injectionConfig
		if err := yaml.UnmarshalStrict([]byte(raw), &ic); err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigKey, err)
		}
		if err := c.applyInjectionConfig(&ic); err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigKey, err)
		}
	}
	if err := c.applyMeshConfig(meshYAML); err != nil {
		return nil, err
	}
	mc, note, err := istioMeshConfig(meshYAML)
	if err != nil {
		return nil, err
	}
	if note != "" {
		c.Notes = append(c.Notes, note)
	}
	c.Mesh = mc
	return c, nil
}

// istioRevision is the revision Istio's templates see: "" for the default.
func (c *Config) istioRevision() string {
	if c.Revision == DefaultRevision {
		return ""
	}
	return c.Revision
}

// rewriteProbesDefault is values.sidecarInjectorWebhook.rewriteAppHTTPProbe.
func (c *Config) rewriteProbesDefault() bool {
	return valuesBool(c.Values, "sidecarInjectorWebhook", "rewriteAppHTTPProbe")
}

func (c *Config) templateNames() []string {
	names := []string{BuiltinTemplate}
	for n := range c.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// resolve maps a template name to what runs: the built-in for mizzen-envoy
// and for "sidecar" when the config has none.
func (c *Config) resolve(name string) (string, error) {
	if name == BuiltinTemplate {
		return name, nil
	}
	if _, ok := c.Templates[name]; ok {
		return name, nil
	}
	if name == "sidecar" {
		return BuiltinTemplate, nil
	}
	return "", fmt.Errorf("no template %q in the injector config (have %s)", name, strings.Join(c.templateNames(), ", "))
}

// selectTemplates are the templates for a pod: its inject.istio.io/templates
// annotation, else the default ones, aliases expanded (not recursively, as
// in Istio).
func (c *Config) selectTemplates(ann map[string]string) ([]string, error) {
	names := c.DefaultTemplates
	if v, ok := ann[AnnotationTemplates]; ok {
		names = nil
		for _, n := range strings.Split(v, ",") {
			names = append(names, strings.TrimSpace(n))
		}
	}
	var out []string
	for _, n := range names {
		expanded := []string{n}
		if a, ok := c.Aliases[n]; ok {
			expanded = a
		}
		for _, e := range expanded {
			r, err := c.resolve(e)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (c *Config) applyValues(v *values) error {
	g := &v.Global
	tag := ""
	switch t := g.Tag.(type) {
	case nil:
	case string:
		tag = t
	case float64:
		tag = fmt.Sprint(t)
	default:
		return fmt.Errorf("global.tag: want a string, got %T", g.Tag)
	}
	if img := imageRef(g.Hub, g.Proxy.Image, tag); img != "" {
		c.ProxyImage = img
	}
	if img := imageRef(g.Hub, g.ProxyInit.Image, tag); img != "" {
		c.InitImage = img
	}
	switch p := corev1.PullPolicy(g.ImagePullPolicy); p {
	case "":
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		c.ImagePullPolicy = p
	default:
		return fmt.Errorf("global.imagePullPolicy: %q is not Always, IfNotPresent or Never", p)
	}
	if r := g.Proxy.Resources; r != nil {
		c.ProxyResources = *r
	}
	if r := g.ProxyInit.Resources; r != nil {
		c.InitResources = *r
	}
	if g.Proxy.LogLevel != "" {
		c.LogLevel = g.Proxy.LogLevel
	}
	for _, f := range []struct {
		field string
		in    *string
		out   *string
	}{
		{"global.proxy.includeIPRanges", g.Proxy.IncludeIPRanges, &c.IncludeOutboundIPRanges},
		{"global.proxy.excludeIPRanges", g.Proxy.ExcludeIPRanges, &c.ExcludeOutboundIPRanges},
		{"global.proxy.excludeOutboundPorts", g.Proxy.ExcludeOutboundPorts, &c.ExcludeOutboundPorts},
		{"global.proxy.includeInboundPorts", g.Proxy.IncludeInboundPorts, &c.IncludeInboundPorts},
		{"global.proxy.excludeInboundPorts", g.Proxy.ExcludeInboundPorts, &c.ExcludeInboundPorts},
	} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	if err := checkCapture(c.IncludeOutboundIPRanges, c.ExcludeOutboundIPRanges, c.ExcludeOutboundPorts,
		c.IncludeInboundPorts, c.ExcludeInboundPorts); err != nil {
		return fmt.Errorf("global.proxy: %w", err)
	}
	if g.MultiCluster.ClusterName != "" {
		c.ClusterID = g.MultiCluster.ClusterName
	}
	if v.Revision != "" {
		c.Revision = v.Revision
	}
	return nil
}

// imageRef resolves an image as Istio's values do: a name with a "/" is used
// as it is, a bare name is <hub>/<name>:<tag>.
func imageRef(hub, image, tag string) string {
	switch {
	case image == "":
		return ""
	case strings.Contains(image, "/") || hub == "":
		return image
	case tag == "":
		return hub + "/" + image
	}
	return hub + "/" + image + ":" + tag
}

func (c *Config) applyInjectionConfig(ic *injectionConfig) error {
	switch ic.Policy {
	case "":
	case PolicyEnabled, PolicyDisabled:
		c.Policy = ic.Policy
	default:
		return fmt.Errorf("policy: %q is neither enabled nor disabled", ic.Policy)
	}
	for i, s := range ic.AlwaysInjectSelector {
		if _, err := metav1.LabelSelectorAsSelector(&s); err != nil {
			return fmt.Errorf("alwaysInjectSelector[%d]: %w", i, err)
		}
	}
	for i, s := range ic.NeverInjectSelector {
		if _, err := metav1.LabelSelectorAsSelector(&s); err != nil {
			return fmt.Errorf("neverInjectSelector[%d]: %w", i, err)
		}
	}
	c.AlwaysInjectSelector, c.NeverInjectSelector = ic.AlwaysInjectSelector, ic.NeverInjectSelector
	c.InjectedAnnotations = ic.InjectedAnnotations
	switch strings.TrimSpace(ic.Template) {
	case "", chartTemplateSentinel:
	default:
		if len(ic.Templates) == 0 {
			return fmt.Errorf("template: Istio's single-template form is not supported; put it under templates.sidecar")
		}
		c.Notes = append(c.Notes, "config.template: ignored, as istiod ignores it when templates is set")
	}
	c.parsed = map[string]*template.Template{}
	c.templateErrs = map[string]error{}
	for _, name := range slices.Sorted(maps.Keys(ic.Templates)) {
		t := ic.Templates[name]
		if name == BuiltinTemplate {
			return fmt.Errorf("templates.%s: the name is mizzen's built-in sidecar", name)
		}
		if !strings.Contains(t, "{{") {
			// A plain fragment can be checked now: a typo in it would
			// otherwise vanish in the merge.
			var frag corev1.Pod
			if err := yaml.UnmarshalStrict([]byte(t), &frag); err != nil {
				return fmt.Errorf("templates.%s: not a Pod fragment: %w", name, err)
			}
		}
		p, err := parseTemplate(name, t)
		if err != nil {
			// One template mizzen cannot parse (a function it lacks) must
			// not stop the others: pods that ask for it are refused with
			// this error, and analyze reports it.
			c.templateErrs[name] = err
			c.Notes = append(c.Notes, fmt.Sprintf("config.templates.%s: not usable: %v", name, err))
			continue
		}
		c.parsed[name] = p
	}
	c.Templates = ic.Templates
	c.Aliases = ic.Aliases
	for alias, names := range ic.Aliases {
		for i, n := range names {
			if _, err := c.resolve(n); err != nil {
				return fmt.Errorf("aliases.%s[%d]: %w", alias, i, err)
			}
		}
	}
	if len(ic.DefaultTemplates) > 0 {
		for i, name := range ic.DefaultTemplates {
			if _, ok := ic.Aliases[name]; ok {
				continue
			}
			if _, err := c.resolve(name); err != nil {
				return fmt.Errorf("defaultTemplates[%d]: %w", i, err)
			}
		}
		c.DefaultTemplates = ic.DefaultTemplates
	}
	return nil
}

// applyMeshConfig reads what the sidecar takes from MeshConfig's
// defaultConfig, as istiod's injector does: the discovery address and Envoy's
// concurrency.
func (c *Config) applyMeshConfig(meshYAML string) error {
	if strings.TrimSpace(meshYAML) == "" {
		return nil
	}
	js, err := yaml.YAMLToJSON([]byte(meshYAML))
	if err != nil {
		return fmt.Errorf("mesh config: %w", err)
	}
	var mc meshv1alpha1.MeshConfig
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, &mc); err != nil {
		return fmt.Errorf("mesh config: %w", err)
	}
	if a := mc.GetDefaultConfig().GetDiscoveryAddress(); a != "" {
		c.DiscoveryAddress = a
	}
	if n := mc.GetDefaultConfig().GetConcurrency(); n != nil && n.GetValue() > 0 {
		c.Concurrency = int(n.GetValue())
	}
	return nil
}
