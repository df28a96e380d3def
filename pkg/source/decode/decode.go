// Package decode turns the JSON of one Kubernetes or Istio object into the type
// model.Inputs holds, strictly: unknown or duplicate fields, values of the wrong
// type and conflicting oneofs are errors naming the field, where the upstream
// decoders would drop or ignore them. Both config sources use it, the file
// source for each YAML document and the Kubernetes source for each object an
// informer delivers, so an object is accepted or refused the same way wherever
// it comes from.
package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	jsonpb "github.com/golang/protobuf/jsonpb"
	protov1 "github.com/golang/protobuf/proto"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

const (
	NetworkingGroup = "networking.istio.io"
	SecurityGroup   = "security.istio.io"
	// DefaultNamespace is given to namespaced objects that name none.
	DefaultNamespace = "default"
)

// Object is one decoded config object.
type Object struct {
	Kind      string // canonical kind, the same for every served version
	Namespace string
	Name      string
	// Value is a pointer to one of the types model.Inputs holds.
	Value any
}

// Header is an object's identity, read leniently before strict decoding so
// that an error in the body can still name the object.
type Header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// Namespace is the namespace the object will get, for naming it in errors.
func (h Header) Namespace() string {
	if h.Metadata.Namespace == "" && h.Kind != "" && h.Kind != "Namespace" && h.Kind != "Node" && h.Metadata.Name != "" {
		return DefaultNamespace
	}
	return h.Metadata.Namespace
}

// ReadHeader reads an object's apiVersion, kind, name and namespace. On error
// the header still holds whatever of them could be read.
func ReadHeader(j []byte) (Header, error) {
	var h Header
	if t := bytes.TrimSpace(j); len(t) == 0 || t[0] != '{' {
		return h, errors.New("document is not an object")
	}
	if err := json.Unmarshal(j, &h); err != nil {
		// A mistyped field in the header itself: report it, but still try to
		// pick out whatever identity parses.
		var loose map[string]any
		_ = json.Unmarshal(j, &loose)
		h.APIVersion, _ = loose["apiVersion"].(string)
		h.Kind, _ = loose["kind"].(string)
		if md, ok := loose["metadata"].(map[string]any); ok {
			h.Metadata.Name, _ = md["name"].(string)
			h.Metadata.Namespace, _ = md["namespace"].(string)
		}
		return h, fmt.Errorf("reading apiVersion/kind/metadata: %w", err)
	}
	switch {
	case h.Kind == "":
		return h, errors.New("missing kind")
	case h.APIVersion == "":
		return h, errors.New("missing apiVersion")
	}
	return h, nil
}

// IstioVersions are the served versions an Istio kind may be read in, newest
// first. Every version carries the same spec message, so all decode to the v1
// client-go type.
func IstioVersions(group string) []string {
	switch group {
	case NetworkingGroup:
		return []string{"v1", "v1beta1", "v1alpha3"}
	case SecurityGroup:
		return []string{"v1", "v1beta1"}
	}
	return nil
}

// FromJSON decodes one object strictly. It returns nil, nil for kinds the
// model does not use. A namespaced object without a namespace is put in
// DefaultNamespace, as kubectl would.
func FromJSON(h Header, j []byte) (*Object, error) {
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion: %w", err)
	}
	var (
		value any
		meta  *metav1.ObjectMeta
	)
	if _, ok := model.UnimplementedKindOf(h.APIVersion, h.Kind); ok {
		// Kept by name so the model can say it is not applied; its spec is
		// not read, so nothing in it is refused either.
		o := &metav1.PartialObjectMetadata{}
		if err := json.Unmarshal(j, o); err != nil {
			return nil, err
		}
		value, meta = o, &o.ObjectMeta
		gv = schema.GroupVersion{} // skip the switch
	}
	switch {
	case value != nil:
	case gv.Group == "" && gv.Version == "v1":
		switch h.Kind {
		case "Namespace":
			o := &corev1.Namespace{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "Service":
			o := &corev1.Service{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "Pod":
			o := &corev1.Pod{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "Node":
			// Read for its locality labels (region, zone, subzone).
			o := &corev1.Node{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "ServiceAccount":
			o := &corev1.ServiceAccount{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "Secret":
			// Only possible gateway credentials are kept (TLS/Opaque with
			// certificate keys); others are skipped like unused kinds.
			o := &corev1.Secret{}
			if err := decodeKube(j, o); err != nil {
				return nil, err
			}
			if !model.IsCredentialSecret(o) {
				return nil, nil
			}
			value, meta = o, &o.ObjectMeta
		case "List":
			return nil, errors.New("a List inside a List is not supported")
		default:
			return nil, nil
		}
	case gv.Group == "apps" && gv.Version == "v1":
		switch h.Kind {
		case "Deployment":
			o := &appsv1.Deployment{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "StatefulSet":
			o := &appsv1.StatefulSet{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "DaemonSet":
			o := &appsv1.DaemonSet{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		case "ReplicaSet":
			o := &appsv1.ReplicaSet{}
			value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
		default:
			return nil, nil
		}
	case gv.Group == "batch" && gv.Version == "v1" && h.Kind == "Job":
		o := &batchv1.Job{}
		value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
	case gv.Group == "discovery.k8s.io" && gv.Version == "v1":
		if h.Kind != "EndpointSlice" {
			return nil, nil
		}
		o := &discoveryv1.EndpointSlice{}
		value, meta, err = o, &o.ObjectMeta, decodeKube(j, o)
	case gv.Group == NetworkingGroup && isIstioVersion(gv):
		switch h.Kind {
		case "VirtualService":
			o := &networking.VirtualService{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "DestinationRule":
			o := &networking.DestinationRule{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "Gateway":
			o := &networking.Gateway{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "ServiceEntry":
			o := &networking.ServiceEntry{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "Sidecar":
			o := &networking.Sidecar{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		default:
			return nil, nil
		}
	case gv.Group == SecurityGroup && isIstioVersion(gv):
		switch h.Kind {
		case "PeerAuthentication":
			o := &security.PeerAuthentication{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "AuthorizationPolicy":
			o := &security.AuthorizationPolicy{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		case "RequestAuthentication":
			o := &security.RequestAuthentication{}
			value, meta, err = o, &o.ObjectMeta, decodeIstio(j, &o.TypeMeta, &o.ObjectMeta, &o.Spec)
		default:
			return nil, nil
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if meta.Name == "" {
		return nil, errors.New("missing metadata.name")
	}
	if meta.Namespace == "" && h.Kind != "Namespace" && h.Kind != "Node" {
		meta.Namespace = DefaultNamespace
	}
	return &Object{Kind: h.Kind, Namespace: meta.Namespace, Name: meta.Name, Value: value}, nil
}

func isIstioVersion(gv schema.GroupVersion) bool {
	for _, v := range IstioVersions(gv.Group) {
		if gv.Version == v {
			return true
		}
	}
	return false
}

// decodeKube decodes a Kubernetes type the way the API server's strict field
// validation does: case-sensitive keys, no unknown or duplicate fields.
func decodeKube(j []byte, into any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(j, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return kubeTypeError(err)
	}
	return errors.Join(strictErrs...)
}

var jsonTypeError = regexp.MustCompile(`^json: cannot unmarshal (\w+) into Go struct field \w*\.(\S+) of type (\S+)$`)

// kubeTypeError restates encoding/json's type errors in the path-first form
// the Istio spec errors use; the Go struct name in them means nothing to
// someone editing YAML.
func kubeTypeError(err error) error {
	m := jsonTypeError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return fieldErr(m[2], "expected %s, got %s", m[3], m[1])
}

// decodeIstio decodes an Istio object into its v1 client-go type whatever the
// served version was. The envelope is decoded separately from the spec because
// the spec's generated UnmarshalJSON silently drops unknown fields, which would
// let a misspelt field quietly change routing.
func decodeIstio(j []byte, tm *metav1.TypeMeta, om *metav1.ObjectMeta, spec protov1.Message) error {
	var env struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            json.RawMessage   `json:"spec"`
		// Status is written by controllers, not by people; a file exported
		// from a cluster carries it and it must not get in the way.
		Status json.RawMessage `json:"status"`
	}
	if err := decodeKube(j, &env); err != nil {
		return err
	}
	gv, _ := schema.ParseGroupVersion(env.APIVersion)
	*tm = metav1.TypeMeta{APIVersion: gv.Group + "/v1", Kind: env.Kind}
	*om = env.Metadata
	if len(env.Spec) == 0 || string(env.Spec) == "null" {
		return nil
	}
	if err := checkSpec(protov1.MessageReflect(spec).Descriptor(), env.Spec); err != nil {
		return err
	}
	// jsonpb rather than protojson: it is what Istio itself decodes with, and it
	// accepts Go durations such as "1m" or "500ms" where protojson wants "60s".
	u := jsonpb.Unmarshaler{AllowUnknownFields: false}
	if err := u.Unmarshal(bytes.NewReader(env.Spec), spec); err != nil {
		return fieldErr("spec", "%v", err)
	}
	return nil
}

// Append adds a decoded object's Value to the list of in that holds its type.
// It panics on a type model.Inputs has no place for: FromJSON returns none.
func Append(in *model.Inputs, v any) {
	switch o := v.(type) {
	case *corev1.Namespace:
		in.Namespaces = append(in.Namespaces, o)
	case *corev1.Service:
		in.Services = append(in.Services, o)
	case *discoveryv1.EndpointSlice:
		in.EndpointSlices = append(in.EndpointSlices, o)
	case *corev1.Pod:
		in.Pods = append(in.Pods, o)
	case *corev1.Node:
		in.Nodes = append(in.Nodes, o)
	case *corev1.ServiceAccount:
		in.ServiceAccounts = append(in.ServiceAccounts, o)
	case *corev1.ConfigMap:
		in.ConfigMaps = append(in.ConfigMaps, o)
	case *corev1.Secret:
		in.Secrets = append(in.Secrets, o)
	case *networking.VirtualService:
		in.VirtualServices = append(in.VirtualServices, o)
	case *networking.DestinationRule:
		in.DestinationRules = append(in.DestinationRules, o)
	case *networking.Gateway:
		in.Gateways = append(in.Gateways, o)
	case *networking.ServiceEntry:
		in.ServiceEntries = append(in.ServiceEntries, o)
	case *networking.Sidecar:
		in.Sidecars = append(in.Sidecars, o)
	case *security.PeerAuthentication:
		in.PeerAuthentications = append(in.PeerAuthentications, o)
	case *security.AuthorizationPolicy:
		in.AuthorizationPolicies = append(in.AuthorizationPolicies, o)
	case *security.RequestAuthentication:
		in.RequestAuthentications = append(in.RequestAuthentications, o)
	case *appsv1.Deployment:
		in.Deployments = append(in.Deployments, o)
	case *appsv1.StatefulSet:
		in.StatefulSets = append(in.StatefulSets, o)
	case *appsv1.DaemonSet:
		in.DaemonSets = append(in.DaemonSets, o)
	case *appsv1.ReplicaSet:
		in.ReplicaSets = append(in.ReplicaSets, o)
	case *batchv1.Job:
		in.Jobs = append(in.Jobs, o)
	case *metav1.PartialObjectMetadata:
		in.Unimplemented = append(in.Unimplemented, o)
	default:
		panic(fmt.Sprintf("decode: a %T has no place in model.Inputs", v))
	}
}
