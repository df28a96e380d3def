// Package kubestore keeps mizzen's CA in Kubernetes the way istiod does: a
// plug-in CA read from Secret cacerts, else a self-signed root created once in
// Secret istio-ca-secret, and the root published to every namespace as
// ConfigMap istio-ca-root-cert. It is separate from certs so that cluster-less
// builds of the CA do not pull in client-go.
package kubestore

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mizzenmesh/mizzen/certs"
)

// Istio's names.
const (
	// SelfSignedSecret holds a self-signed root (ca-cert.pem, ca-key.pem).
	SelfSignedSecret = "istio-ca-secret"
	// PlugInSecret holds an operator's CA (ca-cert.pem, ca-key.pem,
	// root-cert.pem, cert-chain.pem).
	PlugInSecret = "cacerts"
	// RootConfigMap is published in every namespace with the mesh root.
	RootConfigMap = "istio-ca-root-cert"
	// RootConfigMapKey is its only data key.
	RootConfigMapKey = certs.RootCertFile

	// secretType is what istiod sets on istio-ca-secret.
	secretType corev1.SecretType = "istio.io/ca-root"
)

// SecretStore is a certs.Store on one Kubernetes Secret. Put only ever
// creates, so replicas racing to create a root converge on the first one.
type SecretStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

var _ certs.Store = SecretStore{}

// Get returns the material in the Secret; the error wraps certs.ErrNotFound
// when the Secret does not exist. A Secret that exists but lacks ca-cert.pem
// is an error, not "not found": it must not be papered over with a new root.
func (s SecretStore) Get(ctx context.Context) (*certs.Material, error) {
	sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, certs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	if len(sec.Data[certs.CACertFile]) == 0 {
		return nil, fmt.Errorf("secret %s/%s exists but has no %s", s.Namespace, s.Name, certs.CACertFile)
	}
	return certs.MaterialFromFiles(sec.Data), nil
}

// Put creates the Secret; the error wraps certs.ErrExists when it already
// exists. It never updates.
func (s SecretStore) Put(ctx context.Context, m *certs.Material) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace},
		Type:       secretType,
		Data:       m.Files(),
	}
	_, err := s.Client.CoreV1().Secrets(s.Namespace).Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, certs.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// LoadCA returns the mesh CA for a control plane running in namespace
// (istio-system): the plug-in CA in Secret cacerts when it exists, otherwise
// the self-signed root in Secret istio-ca-secret, created on first use. Two
// replicas calling it at once end with the same root: the loser of the Create
// race loads the winner's. A broken cacerts is an error, never a reason to fall
// back to a self-signed root.
func LoadCA(ctx context.Context, client kubernetes.Interface, namespace string, opts certs.Options) (*certs.CA, error) {
	plugIn := SecretStore{Client: client, Namespace: namespace, Name: PlugInSecret}
	m, err := plugIn.Get(ctx)
	switch {
	case err == nil:
		ca, err := certs.New(m, opts)
		if err != nil {
			return nil, fmt.Errorf("plug-in CA from secret %s/%s: %w", namespace, PlugInSecret, err)
		}
		return ca, nil
	case !errors.Is(err, certs.ErrNotFound):
		return nil, err
	}
	self := SecretStore{Client: client, Namespace: namespace, Name: SelfSignedSecret}
	ca, err := certs.LoadOrCreate(ctx, self, opts)
	if err != nil {
		return nil, fmt.Errorf("self-signed CA in secret %s/%s: %w", namespace, SelfSignedSecret, err)
	}
	return ca, nil
}
