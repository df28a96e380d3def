package kubestore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/mizzenmesh/mizzen/certs"
)

const istioSystem = "istio-system"

func TestSecretStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	store := SecretStore{Client: client, Namespace: istioSystem, Name: SelfSignedSecret}

	if _, err := store.Get(ctx); !errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("Get on missing secret: %v, want ErrNotFound", err)
	}
	ca, err := certs.LoadOrCreate(ctx, store, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := client.CoreV1().Secrets(istioSystem).Get(ctx, SelfSignedSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data) != 2 || len(sec.Data[certs.CACertFile]) == 0 || len(sec.Data[certs.CAKeyFile]) == 0 {
		t.Fatalf("istio-ca-secret keys = %v, want ca-cert.pem and ca-key.pem", keys(sec.Data))
	}
	m, err := store.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := certs.New(m, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca.RootCertPEM(), again.RootCertPEM()) {
		t.Fatal("root read back differs from the one stored")
	}

	// Put never overwrites.
	other := &certs.Material{CACert: []byte("x"), CAKey: []byte("y")}
	if err := store.Put(ctx, other); !errors.Is(err, certs.ErrExists) {
		t.Fatalf("second Put: %v, want ErrExists", err)
	}
	if m2, _ := store.Get(ctx); !bytes.Equal(m2.CACert, m.CACert) {
		t.Fatal("second Put overwrote the secret")
	}
}

func TestSecretStoreBrokenSecretIsNotNotFound(t *testing.T) {
	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PlugInSecret, Namespace: istioSystem},
		Data:       map[string][]byte{certs.RootCertFile: []byte("root")},
	})
	_, err := SecretStore{Client: client, Namespace: istioSystem, Name: PlugInSecret}.Get(context.Background())
	if err == nil || errors.Is(err, certs.ErrNotFound) {
		t.Fatalf("Get on secret without ca-cert.pem: %v, want a non-NotFound error", err)
	}
	// And LoadCA must not fall back to a self-signed root next to it.
	if _, err := LoadCA(context.Background(), client, istioSystem, certs.Options{}); err == nil {
		t.Fatal("LoadCA accepted a broken cacerts")
	}
	if _, err := client.CoreV1().Secrets(istioSystem).Get(context.Background(), SelfSignedSecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("istio-ca-secret created despite a cacerts secret: %v", err)
	}
}

func TestLoadCAPrefersCACerts(t *testing.T) {
	ctx := context.Background()
	m, root := plugIn(t)
	client := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: PlugInSecret, Namespace: istioSystem}, Data: m.Files()},
	)
	ca, err := LoadCA(ctx, client, istioSystem, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.PlugIn() {
		t.Fatal("CA from cacerts not reported as plug-in")
	}
	if !bytes.Equal(ca.RootCertPEM(), root) {
		t.Fatal("root is not cacerts' root-cert.pem")
	}
	if _, err := client.CoreV1().Secrets(istioSystem).Get(ctx, SelfSignedSecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("istio-ca-secret created although cacerts exists: %v", err)
	}
}

func TestLoadCASelfSignedKept(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	first, err := LoadCA(ctx, client, istioSystem, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first.PlugIn() {
		t.Fatal("self-signed CA reported as plug-in")
	}
	second, err := LoadCA(ctx, client, istioSystem, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.RootCertPEM(), second.RootCertPEM()) {
		t.Fatal("second LoadCA minted a new root")
	}
}

// Both replicas see no istio-ca-secret (the reactor answers NotFound to the
// first two Gets, whatever the scheduling), both mint a root, one Create loses
// and loads the winner's. (Fake reactors run under a lock, so they cannot block.)
func TestLoadCARaceSameRoot(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	var gets atomic.Int32
	client.PrependReactor("get", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.GetAction).GetName()
		if name == SelfSignedSecret && gets.Add(1) <= 2 {
			return true, nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
		}
		return false, nil, nil
	})
	var creates atomic.Int32
	client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		creates.Add(1)
		return false, nil, nil
	})

	var cas [2]*certs.CA
	var errs [2]error
	var wg sync.WaitGroup
	for i := range cas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cas[i], errs[i] = LoadCA(ctx, client, istioSystem, certs.Options{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if creates.Load() != 2 {
		t.Fatalf("%d Creates, want 2 (the race was not exercised)", creates.Load())
	}
	if !bytes.Equal(cas[0].RootCertPEM(), cas[1].RootCertPEM()) {
		t.Fatal("racing replicas ended with different roots")
	}
	m, err := SecretStore{Client: client, Namespace: istioSystem, Name: SelfSignedSecret}.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := certs.New(m, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.RootCertPEM(), cas[0].RootCertPEM()) {
		t.Fatal("replicas' root is not the stored one")
	}
}

func TestRootPublisher(t *testing.T) {
	root := []byte("-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n")
	client := fake.NewClientset(
		namespace("default"), namespace("istio-system"),
		&corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "going", DeletionTimestamp: &metav1.Time{Time: time.Now()}, Finalizers: []string{"kubernetes"}},
			Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
		},
		// A stale root in one namespace, with an extra key that must survive.
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootConfigMap, Namespace: "istio-system"},
			Data:       map[string]string{RootConfigMapKey: "old", "other": "kept"},
		},
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&RootPublisher{Client: client, RootCertPEM: root, Logger: quiet()}).Run(ctx)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	cms := client.CoreV1().ConfigMaps

	t.Run("existing namespaces", func(t *testing.T) {
		waitRoot(t, client, "default", root)
		waitRoot(t, client, "istio-system", root)
		cm, _ := cms("istio-system").Get(ctx, RootConfigMap, metav1.GetOptions{})
		if cm.Data["other"] != "kept" {
			t.Errorf("repair dropped other keys: %v", cm.Data)
		}
		cm, _ = cms("default").Get(ctx, RootConfigMap, metav1.GetOptions{})
		if cm.Labels["istio.io/config"] != "true" {
			t.Errorf("labels = %v", cm.Labels)
		}
	})
	t.Run("new namespace", func(t *testing.T) {
		if _, err := client.CoreV1().Namespaces().Create(ctx, namespace("bookinfo"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitRoot(t, client, "bookinfo", root)
	})
	t.Run("edited configmap repaired", func(t *testing.T) {
		cm, err := cms("default").Get(ctx, RootConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[RootConfigMapKey] = "tampered"
		if _, err := cms("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitRoot(t, client, "default", root)
	})
	t.Run("deleted configmap re-created", func(t *testing.T) {
		if err := cms("bookinfo").Delete(ctx, RootConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitRoot(t, client, "bookinfo", root)
	})
	t.Run("terminating namespace skipped", func(t *testing.T) {
		if _, err := cms("going").Get(ctx, RootConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("configmap in a terminating namespace: %v", err)
		}
	})
}

func TestRootPublisherRetriesFailures(t *testing.T) {
	root := []byte("root")
	client := fake.NewClientset(namespace("flaky"))
	var fails atomic.Int32
	client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fails.Add(1) <= 3 {
			return true, nil, apierrors.NewServiceUnavailable("try later")
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&RootPublisher{Client: client, RootCertPEM: root, Logger: quiet()}).Run(ctx)
	waitRoot(t, client, "flaky", root)
}

func waitRoot(t *testing.T, client kubernetes.Interface, ns string, root []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(context.Background(), RootConfigMap, metav1.GetOptions{})
		if err == nil && cm.Data[RootConfigMapKey] == string(root) {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = cm.Data[RootConfigMapKey]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s/%s not published within 5s (last: %s)", ns, RootConfigMap, last)
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// plugIn builds root -> intermediate as an operator's cacerts would hold it,
// returning the material and the root PEM.
func plugIn(t *testing.T) (*certs.Material, []byte) {
	t.Helper()
	now := time.Now()
	mk := func(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true, IsCA: true,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	rootCert, rootKey, rootPEM := mk("root", nil, nil)
	_, interKey, interPEM := mk("intermediate", rootCert, rootKey)
	der, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return &certs.Material{
		CACert: interPEM, CAKey: keyPEM, RootCert: rootPEM,
		CertChain: append(append([]byte{}, interPEM...), rootPEM...),
	}, rootPEM
}
