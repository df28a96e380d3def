package xds

import (
	"fmt"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Locality load balancing makes endpoints depend on the caller's locality:
// 1,000 workloads in 3 zones share 3 endpoint parts (not 1,000), and their
// clusters and listeners stay one shared part; without outlierDetection or a
// localityLbSetting, everyone shares one endpoint part, zones or not.
func TestLocalityEndpointsSharedPerLocality(t *testing.T) {
	zones := []string{"zone-a", "zone-b", "zone-c"}
	mesh := func(outlier bool) *model.Inputs {
		in := shareMesh()
		for _, z := range zones {
			in.Nodes = append(in.Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + z,
				Labels: map[string]string{model.LabelRegion: "r1", model.LabelZone: z}}})
		}
		for i := 0; i < 1000; i++ {
			p := workload(i)
			in.Pods = append(in.Pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.PodName, Namespace: "default", Labels: p.Labels},
				Spec: corev1.PodSpec{NodeName: "node-" + zones[i%3]}, Status: corev1.PodStatus{PodIP: p.IP}})
		}
		// Backends of svc-0, one per zone.
		in.Services[0].Spec.Selector = map[string]string{"app": "backend"}
		for j, z := range zones {
			in.Pods = append(in.Pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "backend-" + z, Namespace: "default", Labels: map[string]string{"app": "backend"}},
				Spec: corev1.PodSpec{NodeName: "node-" + z}, Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.3.0.%d", j+1)}})
		}
		if outlier {
			in.DestinationRules = append(in.DestinationRules, &networking.DestinationRule{
				ObjectMeta: metav1.ObjectMeta{Name: "svc-0", Namespace: "default"},
				Spec: networkingapi.DestinationRule{Host: "svc-0", TrafficPolicy: &networkingapi.TrafficPolicy{
					OutlierDetection: &networkingapi.OutlierDetection{}}},
			})
		}
		return in
	}
	count := func(in *model.Inputs) (eds, cds int) {
		g, err := newGeneration(model.Build(in, 1), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		es, cs := map[*part]bool{}, map[*part]bool{}
		for i := 0; i < 1000; i++ {
			sets, _, err := g.build(workload(i), nil, [numTypes]*resourceSet{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range sets[edsType].parts {
				es[p] = true
			}
			cs[sets[cdsType].parts[0]] = true
		}
		return len(es), len(cs)
	}
	if e, c := count(mesh(true)); e != 3 || c != 1 {
		t.Errorf("outlierDetection, 3 zones: %d endpoint parts and %d cluster parts for 1,000 workloads, want 3 and 1", e, c)
	}
	if e, c := count(mesh(false)); e != 1 || c != 1 {
		t.Errorf("no locality LB: %d endpoint parts and %d cluster parts, want 1 and 1", e, c)
	}
}
