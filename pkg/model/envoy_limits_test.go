package model_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/file"
	"github.com/mizzenmesh/mizzen/translate"
)

// TestHostileConfig loads examples/bookinfo next to testdata/hostile.yaml and
// testdata/hostile-credentials.yaml as `mizzen serve --config-dir` does: each bad
// object, or only the bad address of an EndpointSlice, is reported and left
// out, the good ones are untouched, and nothing translated for a gateway or
// a sidecar is something Envoy would refuse.
func TestHostileConfig(t *testing.T) {
	dir := t.TempDir()
	examples, err := filepath.Glob("../../examples/bookinfo/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("examples/bookinfo: %v", err)
	}
	for _, src := range append(examples, "testdata/hostile.yaml", "testdata/hostile-credentials.yaml") {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in, errs := file.New(dir, file.Options{}).Load()
	for _, e := range errs {
		t.Fatalf("input does not parse: %v", e)
	}
	snap := model.Build(&in, 1)

	want := map[string]string{ // kind ns/name field -> code
		"VirtualService default/hostile-regex spec.http[0].match[0].uri.regex":                   "RegexTooLarge",
		"VirtualService default/hostile-header-value spec.http[0].headers.request.set[x-big]":    "InvalidHeaderValue",
		"VirtualService default/hostile-header-match spec.http[0].match[0].headers[x-big].exact": "InvalidHeaderValue",
		"AuthorizationPolicy default/hostile-authz spec.rules[0].from[0].source.serviceAccounts": "UnsupportedAuthzField",
		"Service default/hostile-cluster-ip spec.clusterIP":                                      "InvalidAddress",
		"Service default/hostile-port spec.ports[0].port":                                        "InvalidPort",
		"EndpointSlice default/hostile-slice ports[1].port":                                      "InvalidEndpointPort",
		"EndpointSlice default/hostile-slice endpoints[0].addresses[0]":                          "InvalidEndpointAddress",
		"Pod default/hostile-pod status.podIP":                                                   "InvalidAddress",
		"Gateway istio-system/hostile-tls spec.servers[0].tls.credentialName":                    "InvalidCredential",
	}
	var seen []string
	for _, e := range snap.Errors {
		k := fmt.Sprintf("%s %s/%s %s", e.Kind, e.Namespace, e.Name, e.Field)
		seen = append(seen, k+" "+e.Code)
		if code, ok := want[k]; ok && code == e.Code {
			delete(want, k)
			continue
		}
		if strings.Contains(e.Name, "hostile-good") || e.Name == "good-cred" || !strings.HasPrefix(e.Name, "hostile") {
			t.Errorf("unexpected error on good config: %v", e)
		}
	}
	for k, code := range want {
		t.Errorf("no %s error for %s (errors: %q)", code, k, seen)
	}
	for _, e := range snap.Errors {
		if e.Name == "hostile-tls" && !strings.Contains(e.Message, "RSA with 1024 bits") {
			t.Errorf("credential error does not say why: %v", e)
		}
	}

	if eps := snap.Endpoints(model.ServiceHostname("productpage", "default")); len(eps) != 1 || eps[0].Address != "127.0.1.1" {
		t.Errorf("productpage endpoints = %v, want 127.0.1.1 only: the bad slice naming it must not poison it", eps)
	}
	for _, svc := range []string{"hostile-cluster-ip", "hostile-port"} {
		if snap.Service(model.ServiceHostname(svc, "default")) != nil {
			t.Errorf("Service %s with an unparsable address or port is served", svc)
		}
	}
	if eps := snap.Endpoints(model.ServiceHostname("hostile-pods", "default")); len(eps) != 0 {
		t.Errorf("a Pod with podIP garbage became an endpoint: %v", eps)
	}
	var creds []string
	for _, c := range snap.CredentialsIn("istio-system") {
		creds = append(creds, c.Name)
	}
	if strings.Join(creds, ",") != "good-cred" {
		t.Errorf("credentials served to istio-system gateways: %v, want good-cred only", creds)
	}

	proxies := []struct {
		id       string
		meta     map[string]any
		identity string
	}{
		{"router~127.0.0.20~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local",
			map[string]any{"NAMESPACE": "istio-system", "LABELS": map[string]any{"istio": "ingressgateway"}, "INSTANCE_IPS": "127.0.0.20"},
			"spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"},
		{"sidecar~127.0.1.2~details-v1-0.default~default.svc.cluster.local",
			map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "details", "version": "v1"}, "INSTANCE_IPS": "127.0.1.2"},
			"spiffe://cluster.local/ns/default/sa/bookinfo-details"},
	}
	for _, tp := range proxies {
		p, err := model.ParseProxy(tp.id, tp.meta)
		if err != nil {
			t.Fatal(err)
		}
		p.Identity = tp.identity
		o := translate.ForProxy(snap, p)
		var msgs []proto.Message
		for _, m := range o.Clusters {
			msgs = append(msgs, m)
		}
		for _, m := range o.Endpoints {
			msgs = append(msgs, m)
		}
		for _, m := range o.Listeners {
			msgs = append(msgs, m)
		}
		for _, m := range o.Routes {
			msgs = append(msgs, m)
		}
		for _, m := range msgs {
			if err := m.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Errorf("%s: Envoy would refuse a resource: %v", tp.id, err)
			}
			walkProto(m.ProtoReflect(), func(m protoreflect.Message) {
				switch x := m.Interface().(type) {
				case *matcherv3.RegexMatcher:
					if size, err := model.RegexProgramSize(x.GetRegex()); err != nil || size > model.MaxRegexProgramSize {
						t.Errorf("%s: regex %.60q sent with program size %d (%v)", tp.id, x.GetRegex(), size, err)
					}
				case *corev3.SocketAddress:
					if _, err := netip.ParseAddr(x.GetAddress()); err != nil {
						t.Errorf("%s: socket address %q sent", tp.id, x.GetAddress())
					}
				}
			})
		}
	}
}

// walkProto calls fn for m and every message inside it, Any included.
func walkProto(m protoreflect.Message, fn func(protoreflect.Message)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		if inner, err := a.UnmarshalNew(); err == nil {
			walkProto(inner.ProtoReflect(), fn)
		}
		return
	}
	fn(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkProto(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkProto(mv.Message(), fn)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkProto(v.Message(), fn)
		}
		return true
	})
}

// The regexes envoy_limits.go checks for AuthorizationPolicy values are the
// ones translate writes into RBAC filters.
func TestRBACRegexesMatchTranslate(t *testing.T) {
	dir := t.TempDir()
	policy := `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.3.1
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec: {serviceAccountName: web, containers: [{name: app, image: x}]}
status: {podIP: 10.1.3.1}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from:
    - source:
        namespaces: [prod, "team-*", "*-dev", "*"]
        notNamespaces: [legacy]
        serviceAccounts: [ops/deployer, builder]
`
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	in, errs := file.New(dir, file.Options{}).Load()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	snap := model.Build(&in, 1)
	p, err := model.ParseProxy("sidecar~10.1.3.1~web-0.shop~shop.svc.cluster.local",
		map[string]any{"NAMESPACE": "shop", "LABELS": map[string]any{"app": "web"}, "INSTANCE_IPS": "10.1.3.1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, l := range translate.ForProxy(snap, p).Listeners {
		walkProto(l.ProtoReflect(), func(m protoreflect.Message) {
			if x, ok := m.Interface().(*matcherv3.RegexMatcher); ok {
				got[x.GetRegex()] = true
			}
		})
	}
	for _, c := range []struct{ key, v string }{
		{"source.namespace", "prod"}, {"source.namespace", "team-*"}, {"source.namespace", "*-dev"}, {"source.namespace", "*"},
		{"source.namespace", "legacy"}, {"source.serviceAccount", "ops/deployer"}, {"source.serviceAccount", "builder"},
	} {
		for _, re := range model.RBACRegexesForTest(c.key, c.v) {
			if !got[re] {
				t.Errorf("model expects RBAC regex %q for %s %q; translate wrote %v", re, c.key, c.v, got)
			}
		}
	}
}
