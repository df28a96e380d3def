package model

import (
	"reflect"
	"testing"
)

func TestParseProxy(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		meta    map[string]any
		want    Proxy
		wantErr bool
	}{
		{
			name: "sidecar with metadata",
			id:   "sidecar~10.1.0.4~reviews-v1-0.default~default.svc.cluster.local",
			meta: map[string]any{"LABELS": map[string]any{"app": "reviews", "version": "v1"}, "SERVICE_ACCOUNT": "bookinfo-reviews",
				"INSTANCE_IPS": "10.1.0.4,fd00::4", "CLUSTER_ID": "Kubernetes"},
			want: Proxy{Type: SidecarProxy, IP: "10.1.0.4", PodName: "reviews-v1-0", Namespace: "default", DNSDomain: "default.svc.cluster.local",
				Labels: map[string]string{"app": "reviews", "version": "v1"}, ServiceAccount: "bookinfo-reviews",
				InstanceIPs: []string{"10.1.0.4", "fd00::4"}, ClusterID: "Kubernetes"},
		},
		{
			name: "router, namespace from metadata wins, bind IP extension",
			id:   "router~127.0.0.20~gw-0.istio-system~istio-system.svc.cluster.local",
			meta: map[string]any{"NAMESPACE": "gateways", "MIZZEN_GATEWAY_BIND_IP": "127.0.0.20"},
			want: Proxy{Type: RouterProxy, IP: "127.0.0.20", PodName: "gw-0", Namespace: "gateways", DNSDomain: "istio-system.svc.cluster.local",
				Labels: map[string]string{}, InstanceIPs: []string{"127.0.0.20"}, GatewayBindIP: "127.0.0.20"},
		},
		{
			name: "namespace from the DNS domain when the pod field has none",
			id:   "sidecar~10.0.0.1~vm1~prod.svc.cluster.local",
			want: Proxy{Type: SidecarProxy, IP: "10.0.0.1", PodName: "vm1", Namespace: "prod", DNSDomain: "prod.svc.cluster.local",
				Labels: map[string]string{}, InstanceIPs: []string{"10.0.0.1"}},
		},
		{
			name: "admin address extension, istio-agent version",
			id:   "sidecar~198.18.0.10~a-0.default~default.svc.cluster.local",
			meta: map[string]any{"MIZZEN_ADMIN_ADDRESS": "198.18.0.10:15000", "ISTIO_VERSION": "1.31.1"},
			want: Proxy{Type: SidecarProxy, IP: "198.18.0.10", PodName: "a-0", Namespace: "default", DNSDomain: "default.svc.cluster.local",
				Labels: map[string]string{}, InstanceIPs: []string{"198.18.0.10"}, AdminAddress: "198.18.0.10:15000", IstioVersion: "1.31.1"},
		},
		{
			name: "unusable admin address falls back to the default",
			id:   "sidecar~10.0.0.1~a-0.default~default.svc.cluster.local",
			meta: map[string]any{"MIZZEN_ADMIN_ADDRESS": "localhost:15000"},
			want: Proxy{Type: SidecarProxy, IP: "10.0.0.1", PodName: "a-0", Namespace: "default", DNSDomain: "default.svc.cluster.local",
				Labels: map[string]string{}, InstanceIPs: []string{"10.0.0.1"}},
		},
		{name: "three fields", id: "sidecar~10.0.0.1~pod.ns", wantErr: true},
		{name: "unknown type", id: "waypoint~10.0.0.1~pod.ns~ns.svc.cluster.local", wantErr: true},
		{name: "no namespace anywhere", id: "sidecar~10.0.0.1~pod~", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseProxy(c.id, c.meta)
			if c.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.want.ID = c.id
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got  %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

func TestPortProtocol(t *testing.T) {
	grpc, junk := "grpc", "kubernetes.io/ws"
	cases := []struct {
		name string
		app  *string
		want Protocol
	}{
		{"http", nil, ProtocolHTTP},
		{"http-web", nil, ProtocolHTTP},
		{"http2", nil, ProtocolHTTP2},
		{"grpc-api", nil, ProtocolGRPC},
		{"tcp-mysql", nil, ProtocolTCP},
		{"https", nil, ProtocolHTTPS},
		{"tls", nil, ProtocolTLS},
		{"web", nil, ProtocolUnsupported},
		{"web", &grpc, ProtocolGRPC},
		{"http", &junk, ProtocolHTTP},
	}
	for _, c := range cases {
		if got := PortProtocol(c.name, c.app); got != c.want {
			t.Errorf("PortProtocol(%q, %v) = %s, want %s", c.name, c.app, got, c.want)
		}
	}
}

func TestResolveHost(t *testing.T) {
	for in, want := range map[string]string{
		"reviews":                           "reviews.ns.svc.cluster.local",
		"reviews.default":                   "reviews.default",
		"reviews.default.svc.cluster.local": "reviews.default.svc.cluster.local",
		"*":                                 "*",
		"*.example.com":                     "*.example.com",
	} {
		if got := ResolveHost(in, "ns"); got != want {
			t.Errorf("ResolveHost(%q) = %q, want %q", in, got, want)
		}
	}
}
