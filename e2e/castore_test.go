package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/certs/kubestore"
	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// The CA kept in a real apiserver: two replicas' LoadCA agree on one root
// (kept in Secret istio-ca-secret), and the publisher puts it in ConfigMap
// istio-ca-root-cert in every namespace, new ones included, repairing edits.
func TestKubeCAStore(t *testing.T) {
	api := rig.StartAPIServer(t)
	client := api.Clientset()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, ns := range []string{"istio-system", "alpha"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}

	type result struct {
		ca  *certs.CA
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			ca, err := kubestore.LoadCA(ctx, client, "istio-system", certs.Options{})
			results <- result{ca, err}
		}()
	}
	var roots [][]byte
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		roots = append(roots, r.ca.RootCertPEM())
	}
	if !bytes.Equal(roots[0], roots[1]) {
		t.Fatal("two LoadCA calls ended with different roots")
	}
	sec, err := client.CoreV1().Secrets("istio-system").Get(ctx, kubestore.SelfSignedSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(sec.Data[certs.CACertFile]), bytes.TrimSpace(roots[0])) {
		t.Fatal("istio-ca-secret does not hold the replicas' root")
	}
	again, err := kubestore.LoadCA(ctx, client, "istio-system", certs.Options{})
	if err != nil || !bytes.Equal(again.RootCertPEM(), roots[0]) {
		t.Fatalf("LoadCA after restart: err %v, same root %v", err, err == nil && bytes.Equal(again.RootCertPEM(), roots[0]))
	}

	pubCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- (&kubestore.RootPublisher{Client: client, RootCertPEM: roots[0]}).Run(pubCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("publisher: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("publisher did not stop")
		}
	}()

	wait := func(ns string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, kubestore.RootConfigMap, metav1.GetOptions{})
			if err == nil && cm.Data[kubestore.RootConfigMapKey] == string(roots[0]) {
				return
			}
			last = fmt.Sprint(err)
		}
		t.Fatalf("%s/%s not published within 10s (last: %s)", ns, kubestore.RootConfigMap, last)
	}
	// Existing namespaces, then three new ones.
	for _, ns := range []string{"default", "istio-system", "alpha"} {
		wait(ns)
	}
	for _, ns := range []string{"one", "two", "three"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"one", "two", "three"} {
		wait(ns)
	}
	// Edited and deleted copies come back.
	cm, err := client.CoreV1().ConfigMaps("one").Get(ctx, kubestore.RootConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[kubestore.RootConfigMapKey] = "tampered"
	if _, err := client.CoreV1().ConfigMaps("one").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().ConfigMaps("two").Delete(ctx, kubestore.RootConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("one")
	wait("two")
}
