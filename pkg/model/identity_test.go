package model

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func identityPod(name, sa, ip string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "reviews"}},
		Spec: corev1.PodSpec{ServiceAccountName: sa}, Status: corev1.PodStatus{PodIP: ip}}
}

func TestServiceIdentities(t *testing.T) {
	in := &Inputs{
		Services: []*corev1.Service{service("reviews", corev1.ServicePort{Name: "http", Port: 9080})},
		Pods:     []*corev1.Pod{identityPod("r1", "sa-reviews", "10.1.0.5"), identityPod("r2", "", "10.1.0.6"), identityPod("r3", "sa-reviews", "10.1.0.7")},
	}
	snap := Build(in, 1)
	got := strings.Join(snap.ServiceIdentities(ServiceHostname("reviews", "default")), ",")
	if want := "spiffe://cluster.local/ns/default/sa/default,spiffe://cluster.local/ns/default/sa/sa-reviews"; got != want {
		t.Errorf("identities = %s, want %s", got, want)
	}
	// Another pod of a known account is an endpoint-only change; a new account
	// changes what clusters check, so it is a config change.
	more := *in
	more.Pods = append(append([]*corev1.Pod(nil), in.Pods...), identityPod("r4", "sa-reviews", "10.1.0.8"))
	if Build(&more, 2).ConfigHash != snap.ConfigHash {
		t.Error("a pod of a known service account changed ConfigHash")
	}
	more.Pods = append(more.Pods, identityPod("r5", "sa-new", "10.1.0.9"))
	if Build(&more, 3).ConfigHash == snap.ConfigHash {
		t.Error("a new service account behind the service kept ConfigHash")
	}
}

func TestValidateClientTLS(t *testing.T) {
	dr := func(tls *networkingapi.ClientTLSSettings) *networking.DestinationRule {
		return &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"},
			Spec: networkingapi.DestinationRule{Host: "reviews", TrafficPolicy: &networkingapi.TrafficPolicy{Tls: tls}}}
	}
	cases := []struct {
		tls  *networkingapi.ClientTLSSettings
		want string // field=code(w for warning), comma separated
	}{
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_ISTIO_MUTUAL}},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_SIMPLE, CaCertificates: "/etc/ca.pem", Sni: "x"}},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_TLSmode(9)}, want: "spec.trafficPolicy.tls.mode=InvalidTLSMode"},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_MUTUAL},
			want: "spec.trafficPolicy.tls.clientCertificate=MissingField,spec.trafficPolicy.tls.privateKey=MissingField"},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_SIMPLE, CredentialName: "cred"},
			want: "spec.trafficPolicy.tls.credentialName=UnsupportedField(w)"},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_MUTUAL, CredentialName: "cred", PrivateKey: "/k"},
			want: "spec.trafficPolicy.tls.credentialName=ConflictingTLSSettings"},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_SIMPLE, InsecureSkipVerify: wrapperspb.Bool(true), SubjectAltNames: []string{"a"}},
			want: "spec.trafficPolicy.tls.insecureSkipVerify=ConflictingTLSSettings"},
		{tls: &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_SIMPLE, Sni: strings.Repeat("a", 256), SubjectAltNames: []string{""}},
			want: "spec.trafficPolicy.tls.sni=InvalidSNI,spec.trafficPolicy.tls.subjectAltNames[0]=InvalidSubjectAltName"},
	}
	for i, c := range cases {
		var got []string
		for _, e := range ValidateDestinationRule(dr(c.tls)) {
			s := e.Field + "=" + e.Code
			if e.Warning {
				s += "(w)"
			}
			got = append(got, s)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("case %d: got %v, want %s", i, got, c.want)
		}
	}
}
