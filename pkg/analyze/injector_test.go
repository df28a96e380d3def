package analyze

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestInjector(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector", Namespace: "istio-system"},
		Data: map[string]string{"config": "templates: {ok: 'metadata: {labels: {a: b}}', broken: '{{ nosuch }}'}"}}
	fs := Injector(cm, "")
	if len(fs) != 1 || !fs[0].Warning || fs[0].ID != UnsupportedByMizzen || !strings.Contains(fs[0].Message, `config.templates.broken: not usable`) {
		t.Errorf("findings %+v", fs)
	}
	cm.Data["config"] = "policy: sometimes"
	if fs := Injector(cm, ""); len(fs) != 1 || fs[0].Warning || !strings.Contains(fs[0].Message, "config: policy") {
		t.Errorf("findings %+v", fs)
	}
}
