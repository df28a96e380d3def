package model

import (
	"strings"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Good inputs pass through untouched (no copy per build); a bad address is
// left out of a copy, never edited in the source's object.
func TestCheckAddressesCopiesOnlyWhenNeeded(t *testing.T) {
	port := int32(8080)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.1"}}, {Addresses: []string{"fd00::1", "10.1.0.2"}}},
	}
	good := &Inputs{EndpointSlices: []*discoveryv1.EndpointSlice{slice.DeepCopy()}}
	good.EndpointSlices[0].Endpoints = good.EndpointSlices[0].Endpoints[:1]
	s := &Snapshot{}
	if got := s.checkAddresses(good); got != good || len(s.Errors) != 0 {
		t.Errorf("good inputs were copied or reported: %v", s.Errors)
	}
	bad := &Inputs{EndpointSlices: []*discoveryv1.EndpointSlice{slice}}
	got := s.checkAddresses(bad)
	if got == bad || len(got.EndpointSlices[0].Endpoints) != 2 || strings.Join(got.EndpointSlices[0].Endpoints[1].Addresses, ",") != "10.1.0.2" {
		t.Errorf("an IPv6 address in an IPv4 slice: got %+v", got.EndpointSlices[0].Endpoints)
	}
	if len(slice.Endpoints[1].Addresses) != 2 {
		t.Error("the source's EndpointSlice was edited")
	}
	if len(s.Errors) != 1 || s.Errors[0].Field != "endpoints[1].addresses[0]" || s.Errors[0].Code != "InvalidEndpointAddress" {
		t.Errorf("errors = %v", s.Errors)
	}

	svc := func(name, ip string, p int32, target intstr.IntOrString) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "http", Port: p, TargetPort: target}}}}
	}
	s = &Snapshot{}
	got = s.checkAddresses(&Inputs{Services: []*corev1.Service{
		svc("ok", "10.96.0.1", 80, intstr.FromString("http")), svc("headless", "None", 80, intstr.FromInt32(8080)),
		svc("v6", "fd00::10", 80, intstr.IntOrString{}), svc("target", "10.96.0.2", 80, intstr.FromInt32(70000)),
		svc("neg", "10.96.0.3", -1, intstr.IntOrString{}),
	}})
	var names []string
	for _, o := range got.Services {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "ok,headless,v6" || len(s.Errors) != 2 {
		t.Errorf("kept %v, errors %v", names, s.Errors)
	}
}

func TestServiceEntryPortsInRange(t *testing.T) {
	se := &networking.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "shop"}, Spec: networkingapi.ServiceEntry{
		Hosts:      []string{"ext.example.com"},
		Resolution: networkingapi.ServiceEntry_STATIC,
		Ports:      []*networkingapi.ServicePort{{Number: 443, Name: "tls", Protocol: "TLS", TargetPort: 70000}},
		Endpoints:  []*networkingapi.WorkloadEntry{{Address: "10.2.0.1", Ports: map[string]uint32{"tls": 99999}}},
	}}
	var fields []string
	for _, e := range ValidateServiceEntry(se) {
		fields = append(fields, e.Field+" "+e.Code)
	}
	if strings.Join(fields, ";") != "spec.ports[0].targetPort InvalidPort;spec.endpoints[0].ports[tls] InvalidPort" {
		t.Errorf("errors: %v", fields)
	}
}
