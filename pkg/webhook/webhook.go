// Package webhook serves Kubernetes admission webhooks as istiod does on
// 15017: /inject, the sidecar injector (a JSON Patch adding what pkg/inject
// adds), and /validate, which refuses Istio config mizzen would skip, with
// the kind, namespace/name, field and reason in the message kubectl prints.
// It is plain HTTP handlers; TLS, certificates and the webhook configurations
// are the caller's (cmd/mizzen/webhook.go).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/inject"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/decode"
)

// Paths, as istiod serves them.
const (
	InjectPath   = "/inject"
	ValidatePath = "/validate"
	// maxBody bounds a request; the apiserver sends at most its own 3 MiB
	// object limit plus the review envelope.
	maxBody = 8 << 20
)

// Server holds what the handlers need.
type Server struct {
	Log     *slog.Logger
	Metrics *Metrics
	// InjectConfig returns the injector configuration in force (from the
	// istio-sidecar-injector and istio ConfigMaps).
	InjectConfig func() *inject.Config
	// NamespaceLabels returns the labels of a namespace; injection depends on
	// them.
	NamespaceLabels func(ctx context.Context, namespace string) (map[string]string, error)
}

// Handler serves InjectPath and ValidatePath.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(InjectPath, s.serve(s.inject))
	mux.HandleFunc(ValidatePath, s.serve(s.validate))
	// Istio's injector also answers on /inject/<anything> (revision paths).
	mux.HandleFunc(InjectPath+"/", s.serve(s.inject))
	return mux
}

type reviewFunc func(ctx context.Context, path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse

// serve decodes an AdmissionReview, runs f and writes the review back with
// the request's UID. Malformed requests get an HTTP error, which the
// apiserver treats according to the webhook's failurePolicy.
func (s *Server) serve(f reviewFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			http.Error(w, "Content-Type must be application/json, not "+ct, http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxBody {
			http.Error(w, "request over 8 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("not an AdmissionReview: %v", err), http.StatusBadRequest)
			return
		}
		// The apiserver's own timeout (10 s by default) bounds the call;
		// nothing here should take long.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		resp := f(ctx, r.URL.Path, review.Request)
		resp.UID = review.Request.UID
		out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}
}

func allowed() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

func denied(code int32, msg string, causes ...metav1.StatusCause) *admissionv1.AdmissionResponse {
	st := &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}
	if code == http.StatusBadRequest {
		st.Reason = metav1.StatusReasonBadRequest
	}
	if len(causes) > 0 {
		st.Details = &metav1.StatusDetails{Causes: causes}
	}
	return &admissionv1.AdmissionResponse{Allowed: false, Result: st}
}

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// inject answers for a Pod being created: a JSON Patch adding the sidecar
// when inject.Required says so, else an empty allow.
func (s *Server) inject(ctx context.Context, path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	s.Metrics.injectRequest()
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		// Only pod creation is ours; anything else the configuration sends
		// by mistake passes untouched.
		return allowed()
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		s.Metrics.injectFailureInc("decode")
		return denied(http.StatusBadRequest, fmt.Sprintf("sidecar injection: Pod %s/%s: %v", req.Namespace, req.Name, err))
	}
	ns := req.Namespace
	// A pod created with `kubectl -n` or by a controller may carry no
	// namespace of its own; templates see the request's, as istiod's do.
	// Set before the patch's "before", so the patch does not add it.
	if pod.Namespace == "" {
		pod.Namespace = ns
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	log := s.Log.With("namespace", ns, "pod", name)
	nsLabels, err := s.NamespaceLabels(ctx, ns)
	if err != nil {
		s.Metrics.injectFailureInc("namespace")
		log.Error("sidecar injection: cannot read the namespace's labels", "err", err)
		return denied(http.StatusInternalServerError, fmt.Sprintf("sidecar injection: Pod %s/%s: reading namespace %s: %v", ns, name, ns, err))
	}
	cfg := s.InjectConfig()
	d := inject.Required(cfg, nsLabels, &pod, ns)
	if !d.Inject {
		s.Metrics.injectSkipInc()
		log.Debug("sidecar not injected", "reason", d.Reason)
		return allowed()
	}
	before, err := toJSONValue(&pod)
	if err != nil {
		s.Metrics.injectFailureInc("encode")
		return denied(http.StatusInternalServerError, err.Error())
	}
	envs, pathNotes := InjectPathEnvs(path)
	notes, err := inject.InjectNotes(&pod, cfg, inject.Params{Namespace: ns, ProxyEnvs: envs})
	notes = append(pathNotes, notes...)
	if err != nil {
		s.Metrics.injectFailureInc("inject")
		log.Warn("sidecar injection refused", "err", err)
		field := ""
		var ie *inject.Error
		if errors.As(err, &ie) {
			field = ie.Field
		}
		return denied(http.StatusBadRequest, "sidecar injection: "+err.Error(),
			metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: err.Error()})
	}
	after, err := toJSONValue(&pod)
	if err != nil {
		s.Metrics.injectFailureInc("encode")
		return denied(http.StatusInternalServerError, err.Error())
	}
	ops := Diff(before, after)
	if len(ops) == 0 {
		// Nothing to add (a pod bringing its own sidecar, say): allowed as
		// it is, with what was not applied said.
		s.Metrics.injectSkipInc()
		resp := allowed()
		resp.Warnings = notes
		return resp
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		s.Metrics.injectFailureInc("encode")
		return denied(http.StatusInternalServerError, err.Error())
	}
	s.Metrics.injectSuccessInc()
	log.Info("sidecar injected", "reason", d.Reason, "dry_run", req.DryRun != nil && *req.DryRun)
	for _, n := range notes {
		log.Warn("sidecar injection: not applied as asked", "note", n)
	}
	pt := admissionv1.PatchTypeJSONPatch
	// kubectl prints warnings: what was not applied is said where the user
	// looks.
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt, Warnings: notes}
}

// toJSONValue is v as decoded JSON. Both sides of the diff go through the
// same typed encoding, so the patch holds only what injection changed.
func toJSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

// validate refuses an Istio object that mizzen's strict decoder or its
// single-object checks (the same ones serve and analyze apply) find an error
// in; warnings are passed back for kubectl to print.
func (s *Server) validate(ctx context.Context, _ string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return allowed()
	}
	raw := req.Object.Raw
	h, err := decode.ReadHeader(raw)
	if err != nil {
		s.Metrics.validationFailed("decode")
		return denied(http.StatusBadRequest, fmt.Sprintf("%s %s/%s: %v", req.Kind.Kind, req.Namespace, req.Name, err))
	}
	// An object created with `kubectl -n` carries no namespace of its own;
	// the request's is the one it will get.
	if h.Metadata.Namespace == "" && req.Namespace != "" {
		if raw, err = setNamespace(raw, req.Namespace); err != nil {
			s.Metrics.validationFailed("decode")
			return denied(http.StatusBadRequest, err.Error())
		}
		h.Metadata.Namespace = req.Namespace
	}
	obj, err := decode.FromJSON(h, raw)
	if err != nil {
		s.Metrics.validationFailed("decode")
		field, reason := decode.Field(err)
		msg := fmt.Sprintf("%s %s/%s", h.Kind, h.Namespace(), h.Metadata.Name)
		if field != "" {
			msg += " " + field
		}
		msg += ": " + reason
		s.Log.Info("config refused", "kind", h.Kind, "namespace", h.Namespace(), "name", h.Metadata.Name, "field", field, "reason", reason)
		return denied(http.StatusBadRequest, msg, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: reason})
	}
	if obj == nil {
		return allowed() // a kind mizzen does not read
	}
	var errs, warns []string
	var causes []metav1.StatusCause
	for _, e := range validateObject(obj.Value) {
		if e.Warning {
			warns = append(warns, e.Error())
			continue
		}
		errs = append(errs, e.Error())
		causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: e.Field, Message: e.Message})
		s.Log.Info("config refused", "kind", e.Kind, "namespace", e.Namespace, "name", e.Name, "field", e.Field, "code", e.Code, "reason", e.Message)
	}
	if len(errs) > 0 {
		s.Metrics.validationFailed("invalid")
		resp := denied(http.StatusBadRequest, strings.Join(errs, "; "), causes...)
		resp.Warnings = warns
		return resp
	}
	s.Metrics.validationPassed()
	resp := allowed()
	resp.Warnings = warns
	return resp
}

// validateObject runs the model's single-object checks for the kinds that
// have them; the other kinds are checked by the strict decoder alone.
// Fields mizzen does not apply are warnings (model.IgnoredFieldErrors).
func validateObject(v any) []model.ConfigError {
	switch o := v.(type) {
	case *networking.VirtualService:
		return append(model.ValidateVirtualService(o), model.IgnoredFieldErrors("VirtualService", o.ObjectMeta, &o.Spec)...)
	case *networking.DestinationRule:
		return append(model.ValidateDestinationRule(o), model.IgnoredFieldErrors("DestinationRule", o.ObjectMeta, &o.Spec)...)
	case *networking.Gateway:
		return append(model.ValidateGateway(o), model.IgnoredFieldErrors("Gateway", o.ObjectMeta, &o.Spec)...)
	case *networking.ServiceEntry:
		return append(model.ValidateServiceEntry(o), model.IgnoredFieldErrors("ServiceEntry", o.ObjectMeta, &o.Spec)...)
	case *networking.Sidecar:
		return append(model.ValidateSidecar(o), model.IgnoredFieldErrors("Sidecar", o.ObjectMeta, &o.Spec)...)
	case *security.RequestAuthentication:
		return append(model.ValidateRequestAuthentication(o), model.IgnoredFieldErrors("RequestAuthentication", o.ObjectMeta, &o.Spec)...)
	case *security.AuthorizationPolicy:
		return append(model.ValidateAuthorizationPolicy(o), model.IgnoredFieldErrors("AuthorizationPolicy", o.ObjectMeta, &o.Spec)...)
	case *security.PeerAuthentication:
		return model.IgnoredFieldErrors("PeerAuthentication", o.ObjectMeta, &o.Spec)
	case *metav1.PartialObjectMetadata:
		// A kind mizzen does not implement: admitted, with a warning.
		e := model.UnimplementedError(o)
		e.Warning = true
		return []model.ConfigError{e}
	}
	return nil
}

func setNamespace(raw []byte, ns string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		m["metadata"] = md
	}
	md["namespace"] = ns
	return json.Marshal(m)
}

// urlParameterEnvs are the short names a webhook path may use.
func urlParameterEnv(k string) string {
	switch k {
	case "cluster":
		return "ISTIO_META_CLUSTER_ID"
	case "net":
		return "ISTIO_META_NETWORK"
	}
	return strings.ToUpper(k)
}

// InjectPathEnvs reads the proxy env a webhook configuration passes in its
// path, as istiod does: /inject/cluster/<id>/net/<network>/<key>/<value>…
// (cluster and net name ISTIO_META_CLUSTER_ID and ISTIO_META_NETWORK, other
// keys are upper-cased; "--slash--" in a value is "/"), or the older
// /inject/:ENV:<key>=<value>:ENV:… form. A key without a value is left out
// and noted.
func InjectPathEnvs(path string) (map[string]string, []string) {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(path, "/"), InjectPath+"/")
	if !ok || rest == "" {
		return nil, nil
	}
	envs := map[string]string{}
	var notes []string
	if strings.HasPrefix(rest, ":ENV:") {
		for _, kv := range strings.Split(rest, ":ENV:")[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if k == "" || !ok {
				notes = append(notes, fmt.Sprintf("webhook path %s: %q is not <key>=<value>; left out", path, kv))
				continue
			}
			envs[urlParameterEnv(k)] = v
		}
		return envs, notes
	}
	parts := strings.Split(rest, "/")
	for i := 0; i < len(parts); i += 2 {
		if i+1 == len(parts) {
			notes = append(notes, fmt.Sprintf("webhook path %s: key %q has no value; left out", path, parts[i]))
			break
		}
		envs[urlParameterEnv(parts[i])] = strings.ReplaceAll(parts[i+1], "--slash--", "/")
	}
	return envs, notes
}
