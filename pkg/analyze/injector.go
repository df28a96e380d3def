package analyze

import (
	"github.com/mizzenmesh/mizzen/pkg/inject"
	"github.com/mizzenmesh/mizzen/pkg/model"
	corev1 "k8s.io/api/core/v1"
)

// Injector checks the istio-sidecar-injector ConfigMap as mizzen's webhook
// and `mizzen inject` read it (with the mesh config, "" for none): an error
// when mizzen refuses it (the webhook then keeps injecting with its previous
// config), and a warning for each template or setting in it that mizzen
// does not apply (a template using a function mizzen lacks, say), so nothing
// in it is ignored unsaid.
func Injector(cm *corev1.ConfigMap, meshYAML string) []Finding {
	at := func(code, field, msg string, warning bool) Finding {
		return NewFinding(model.ConfigError{Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name,
			Field: field, Code: code, Message: msg, Warning: warning})
	}
	cfg, err := inject.FromConfigMap(cm.Data, meshYAML)
	if err != nil {
		return []Finding{at("InjectorConfigRefused", "data", err.Error(), false)}
	}
	var out []Finding
	for _, n := range cfg.Notes {
		out = append(out, at("InjectorNotApplied", "data", n, true))
	}
	return out
}
