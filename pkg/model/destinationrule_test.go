package model

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func nsService(name, ns string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
}

// dr builds a DestinationRule; age orders creation (0 oldest).
func dr(ns, name, host string, age int, exportTo []string, subsets ...string) *networking.DestinationRule {
	out := &networking.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			CreationTimestamp: metav1.NewTime(time.Date(2024, 1, 1, 0, age, 0, 0, time.UTC))},
		Spec: networkingapi.DestinationRule{Host: host, ExportTo: exportTo},
	}
	for _, ss := range subsets {
		out.Spec.Subsets = append(out.Spec.Subsets, &networkingapi.Subset{Name: ss, Labels: map[string]string{"version": ss}})
	}
	return out
}

func ruleName(d *networking.DestinationRule) string {
	if d == nil {
		return "<none>"
	}
	return d.Namespace + "/" + d.Name
}

func TestDestinationRuleForNamespaceOrder(t *testing.T) {
	const host = "api.backend.svc.cluster.local"
	in := &Inputs{
		Services: []*corev1.Service{nsService("api", "backend")},
		DestinationRules: []*networking.DestinationRule{
			dr("istio-system", "mesh", host, 0, nil),
			dr("istio-system", "root-private", host, 1, []string{"."}),
			dr("backend", "api", "api", 2, []string{".", "partner"}),
			dr("frontend", "own", host, 3, []string{"."}),
			dr("tenant", "wild", "*.svc.cluster.local", 4, nil),
			dr("tenant", "wilder", "*", 5, nil),
		},
	}
	s := Build(in, 1)
	for _, e := range s.Errors {
		t.Errorf("unexpected config error: %v", e)
	}
	for ns, want := range map[string]string{
		"frontend":     "frontend/own",              // step 1: own namespace, private rule
		"backend":      "backend/api",               // step 1 (also the service's namespace)
		"partner":      "backend/api",               // step 2: exported to partner by name
		"other":        "istio-system/mesh",         // step 3: root namespace, exported to all
		"":             "istio-system/mesh",         // the shared view of DestinationRule(host)
		"istio-system": "istio-system/root-private", // root namespace proxies see root private rules first
		"tenant":       "tenant/wild",               // most specific wildcard of the own namespace
	} {
		if got := ruleName(s.DestinationRuleFor(host, ns)); got != want {
			t.Errorf("DestinationRuleFor(%s, %q) = %s, want %s", host, ns, got, want)
		}
	}
	if got := ruleName(s.DestinationRule(host)); got != "istio-system/mesh" {
		t.Errorf("DestinationRule(%s) = %s, want the root rule", host, got)
	}
}

func TestDestinationRuleForExportToHidesRules(t *testing.T) {
	const host = "api.backend.svc.cluster.local"
	in := &Inputs{
		Services: []*corev1.Service{nsService("api", "backend")},
		DestinationRules: []*networking.DestinationRule{
			dr("backend", "private", "api", 0, []string{"."}),
		},
	}
	s := Build(in, 1)
	if got := ruleName(s.DestinationRuleFor(host, "backend")); got != "backend/private" {
		t.Errorf("own namespace sees %s", got)
	}
	if got := s.DestinationRuleFor(host, "frontend"); got != nil {
		t.Errorf("exportTo: [.] leaked to frontend: %s", ruleName(got))
	}
}

func TestDestinationRuleForMeshDefaultExportTo(t *testing.T) {
	const host = "api.backend.svc.cluster.local"
	in := &Inputs{
		ConfigMaps: []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
			Data: map[string]string{"mesh": "defaultDestinationRuleExportTo: [\".\"]"}}},
		Services: []*corev1.Service{nsService("api", "backend")},
		DestinationRules: []*networking.DestinationRule{
			dr("backend", "default-private", "api", 0, nil),
			dr("backend", "explicit-public", "api", 1, []string{"*"}, "v1"),
		},
	}
	s := Build(in, 1)
	// backend sees both (kept apart: different exportTo), the newer one last.
	if got := ruleName(s.DestinationRuleFor(host, "backend")); got != "backend/explicit-public" {
		t.Errorf("backend sees %s", got)
	}
	if got := ruleName(s.DestinationRuleFor(host, "frontend")); got != "backend/explicit-public" {
		t.Errorf("frontend sees %s, want only the explicitly public rule", got)
	}
}

func TestDestinationRuleMergeSameNamespace(t *testing.T) {
	const host = "api.backend.svc.cluster.local"
	older := dr("backend", "a", "api", 0, nil, "v1")
	older.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{LoadBalancer: &networkingapi.LoadBalancerSettings{
		LbPolicy: &networkingapi.LoadBalancerSettings_Simple{Simple: networkingapi.LoadBalancerSettings_RANDOM}}}
	newer := dr("backend", "b", host, 1, nil, "v1", "v2")
	newer.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{LoadBalancer: &networkingapi.LoadBalancerSettings{
		LbPolicy: &networkingapi.LoadBalancerSettings_Simple{Simple: networkingapi.LoadBalancerSettings_ROUND_ROBIN}}}
	in := &Inputs{Services: []*corev1.Service{nsService("api", "backend")}, DestinationRules: []*networking.DestinationRule{newer, older}}
	s := Build(in, 1)
	got := s.DestinationRuleFor(host, "frontend")
	if ruleName(got) != "backend/a" {
		t.Fatalf("merged rule named %s, want the oldest contributor", ruleName(got))
	}
	var names []string
	for _, ss := range got.Spec.GetSubsets() {
		names = append(names, ss.GetName()+"="+ss.GetLabels()["version"])
	}
	if len(names) != 2 || names[0] != "v1=v1" || names[1] != "v2=v2" {
		t.Errorf("merged subsets = %v, want [v1=v1 v2=v2]", names)
	}
	if got.Spec.GetTrafficPolicy().GetLoadBalancer().GetSimple() != networkingapi.LoadBalancerSettings_RANDOM {
		t.Errorf("merged trafficPolicy = %v, want the oldest rule's", got.Spec.GetTrafficPolicy())
	}
	if len(s.Errors) != 1 || s.Errors[0].Code != "DuplicateSubset" || !s.Errors[0].Warning || s.Errors[0].Name != "b" {
		t.Errorf("errors = %v, want one DuplicateSubset warning on backend/b", s.Errors)
	}
	if len(older.Spec.Subsets) != 1 {
		t.Errorf("merge mutated the input object")
	}
}

func TestDestinationRuleViewKey(t *testing.T) {
	const host = "api.backend.svc.cluster.local"
	in := &Inputs{
		Services: []*corev1.Service{nsService("api", "backend"), nsService("web", "frontend")},
		DestinationRules: []*networking.DestinationRule{
			dr("backend", "api", "api", 0, []string{".", "partner"}),
			dr("frontend", "web", "web", 1, nil), // for its own service: changes nobody's view
			dr("istio-system", "mesh", host, 2, nil),
		},
	}
	s := Build(in, 1)
	public := s.DestinationRuleViewKey("")
	if public != "" {
		t.Errorf("public view key = %q, want \"\"", public)
	}
	if k := s.DestinationRuleViewKey("frontend"); k != public {
		t.Errorf("frontend key %q differs from the public view although it resolves alike", k)
	}
	if s.DestinationRuleViewKey("other") != public {
		t.Errorf("other differs from the public view")
	}
	partner, backend := s.DestinationRuleViewKey("partner"), s.DestinationRuleViewKey("backend")
	if partner == public || backend == public {
		t.Errorf("partner %q / backend %q share the public key", partner, backend)
	}
	if partner != backend {
		t.Errorf("partner and backend resolve alike but have keys %q and %q", partner, backend)
	}
}

func TestValidateDestinationRuleAcceptsFullPolicy(t *testing.T) {
	spec := `
host: reviews
exportTo: [".", partner]
trafficPolicy:
  loadBalancer:
    consistentHash:
      httpCookie: {name: user, path: /, ttl: 0s, attributes: [{name: SameSite, value: Strict}]}
      maglev: {tableSize: 65537}
  connectionPool:
    tcp: {maxConnections: 100, connectTimeout: 0.030s, idleTimeout: 0s, maxConnectionDuration: 3600s,
          tcpKeepalive: {time: 7200s, interval: 75s, probes: 9}}
    http: {http1MaxPendingRequests: 1, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3,
           idleTimeout: 30s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 100}
  outlierDetection:
    consecutive5xxErrors: 7
    consecutiveGatewayErrors: 0
    splitExternalLocalOriginErrors: true
    consecutiveLocalOriginFailures: 2
    interval: 300s
    baseEjectionTime: 900s
    maxEjectionPercent: 100
    minHealthPercent: 0
  portLevelSettings:
  - port: {number: 9080}
    loadBalancer: {simple: ROUND_ROBIN}
subsets:
- name: v1
  labels: {version: v1, app.kubernetes.io/name: reviews}
  trafficPolicy:
    loadBalancer:
      consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 1024}}
`
	d := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}}
	if err := unmarshalSpec(spec, &d.Spec); err != nil {
		t.Fatal(err)
	}
	if errs := ValidateDestinationRule(d); len(errs) != 0 {
		t.Errorf("valid DestinationRule rejected: %v", errs)
	}
}

func unmarshalSpec(y string, into *networkingapi.DestinationRule) error {
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		return err
	}
	return protojson.Unmarshal(js, into)
}
