package model

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testKeyPair(t *testing.T) (crt, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// A renewed certificate is no config change (only SDS moves); a Secret
// becoming usable or unusable is one (servers appear or disappear).
func TestCredentialConfigHash(t *testing.T) {
	crt, key := testKeyPair(t)
	secret := func(data map[string][]byte) *Inputs {
		return &Inputs{Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: "c"}, Type: corev1.SecretTypeOpaque, Data: data}}}
	}
	a := Build(secret(map[string][]byte{"cert": crt, "key": key}), 1)
	if c := a.Credential("gw", "c"); c == nil || string(c.Key) != string(key) {
		t.Fatalf("generic cert/key Secret not a credential: %+v", a.creds)
	}
	crt2, key2 := testKeyPair(t)
	b := Build(secret(map[string][]byte{"cert": crt2, "key": key2}), 2)
	if a.ConfigHash != b.ConfigHash {
		t.Error("a renewed certificate changed ConfigHash: every proxy's config would be rebuilt")
	}
	c := Build(secret(map[string][]byte{"cert": crt2, "key": key}), 3)
	if c.Credential("gw", "c") != nil || c.ConfigHash == a.ConfigHash {
		t.Error("a certificate that does not match its key is usable, or did not change ConfigHash")
	}
}
