package translate

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// benchMesh is n services with an HTTP and a TCP port each, and a mesh config.
func benchMesh(n int, mesh string) *model.Snapshot {
	in := &model.Inputs{}
	for i := 0; i < n; i++ {
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), Ports: []corev1.ServicePort{
				{Name: "http", Port: 8080}, {Name: "tcp-db", Port: 5432}}},
		})
	}
	if mesh != "" {
		in.ConfigMaps = []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
			Data: map[string]string{"mesh": mesh}}}
	}
	return model.Build(in, 1)
}

// The shared sidecar outbound listeners of a 1,000-service mesh (1,002
// listeners: 1,000 TCP, one HTTP, virtualOutbound) without telemetry, with
// access logs, and with access logs and tracing: the cost of withMeshTelemetry.
func BenchmarkSidecarOutboundListenersTelemetry(b *testing.B) {
	for _, c := range []struct{ name, mesh string }{
		{"off", ""},
		{"accesslog", "accessLogFile: /dev/stdout"},
		{"accesslog+tracing", "accessLogFile: /dev/stdout\ndefaultConfig: {tracing: {zipkin: {address: 'zipkin.istio-system:9411'}}}"},
	} {
		snap := benchMesh(1000, c.mesh)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if ls := SidecarOutboundListeners(snap); len(ls) != 1002 {
					b.Fatalf("%d listeners", len(ls))
				}
			}
		})
	}
}
