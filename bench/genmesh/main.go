// Command genmesh writes a generated mesh as Kubernetes/Istio YAML for benches:
// N services in one namespace, each with a Service (port 8080 "http") and an
// EndpointSlice of E endpoints; every 10th service also gets a VirtualService
// splitting 90/10 between subsets v1/v2 and a DestinationRule defining them.
//
// Layout of -out DIR:
//
//	DIR/mesh/namespace.yaml       the Namespace
//	DIR/mesh/svc-NNNNN.yaml       Service + EndpointSlice (+ VirtualService + DestinationRule)
//	DIR/mesh/vs-svc-0.yaml        svc-0's VirtualService, initially the content of b.yaml
//	DIR/mesh/eps-svc-1.yaml       svc-1's EndpointSlice (not in svc-1's file), initially eds-b.yaml
//	DIR/variants/a.yaml           svc-0's VirtualService with weights 90/10
//	DIR/variants/b.yaml           svc-0's VirtualService with weights 80/20
//	DIR/variants/eds-a.yaml       svc-1's EndpointSlice with one more endpoint (the next free address)
//	DIR/variants/eds-b.yaml       svc-1's EndpointSlice as generated
//
// Point the control plane at DIR/mesh and xdsload at the variants: a route
// (weight) change
//
//	xdsload --change-file DIR/mesh/vs-svc-0.yaml --change-file-a DIR/variants/a.yaml --change-file-b DIR/variants/b.yaml
//
// or an endpoint change
//
//	xdsload --change-file DIR/mesh/eps-svc-1.yaml --change-file-a DIR/variants/eds-a.yaml --change-file-b DIR/variants/eds-b.yaml
//
// The Services have no selector: their EndpointSlices are written by hand (as
// the e2e rig does), so a Kubernetes EndpointSlice controller leaves them alone.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// marker, in the output directory, marks a mesh/ that genmesh wrote and may replace.
const marker = ".genmesh"

type config struct {
	Services        int
	Namespace       string
	Endpoints       int
	VSEvery         int
	ClusterIPPrefix string // first two octets, e.g. "10.100"
	EndpointPrefix  string // first two octets, e.g. "10.200"
}

func main() {
	var c config
	out := flag.String("out", "bench/out", "output directory (mesh/ and variants/ are written inside)")
	flag.IntVar(&c.Services, "n", 1000, "number of services")
	flag.StringVar(&c.Namespace, "namespace", "bench", "namespace of everything")
	flag.IntVar(&c.Endpoints, "endpoints", 5, "endpoints per service")
	flag.IntVar(&c.VSEvery, "vs-every", 10, "every k-th service (0, k, 2k, …) gets a VirtualService and DestinationRule")
	flag.StringVar(&c.ClusterIPPrefix, "cluster-ip-prefix", "10.100", "first two octets of the Service clusterIPs (must lie in the cluster's service CIDR in Kubernetes mode)")
	flag.StringVar(&c.EndpointPrefix, "endpoint-prefix", "10.200", "first two octets of the endpoint addresses")
	flag.Parse()
	if err := generate(c, *out); err != nil {
		fmt.Fprintln(os.Stderr, "genmesh:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d services to %s\n  control plane: %s\n  xdsload: --change-file %s --change-file-a %s --change-file-b %s\n",
		c.Services, *out, filepath.Join(*out, "mesh"),
		filepath.Join(*out, "mesh", "vs-svc-0.yaml"), filepath.Join(*out, "variants", "a.yaml"), filepath.Join(*out, "variants", "b.yaml"))
	if c.Services > 1 {
		fmt.Printf("  endpoint change: --change-file %s --change-file-a %s --change-file-b %s\n",
			filepath.Join(*out, "mesh", "eps-svc-1.yaml"), filepath.Join(*out, "variants", "eds-a.yaml"), filepath.Join(*out, "variants", "eds-b.yaml"))
	}
}

func (c config) validate() error {
	if c.Services < 1 || c.Endpoints < 0 || c.VSEvery < 0 || c.Namespace == "" {
		return errors.New("need -n >= 1, -endpoints >= 0, -vs-every >= 0 and a namespace")
	}
	if c.Services > 65534 {
		return fmt.Errorf("at most 65534 services fit in %s.0.0/16", c.ClusterIPPrefix)
	}
	if c.Services*c.Endpoints > 65533 { // and one more for the endpoint change
		return fmt.Errorf("at most 65533 endpoints fit in %s.0.0/16", c.EndpointPrefix)
	}
	for _, p := range []string{c.ClusterIPPrefix, c.EndpointPrefix} {
		if _, err := netip.ParseAddr(p + ".0.1"); err != nil {
			return fmt.Errorf("prefix %q: want two octets like 10.100", p)
		}
	}
	return nil
}

// ip returns prefix.(n/256).(n%256).
func ip(prefix string, n int) string { return fmt.Sprintf("%s.%d.%d", prefix, n/256, n%256) }

func generate(c config, out string) error {
	if err := c.validate(); err != nil {
		return err
	}
	mesh, variants := filepath.Join(out, "mesh"), filepath.Join(out, "variants")
	if err := prepare(out, mesh); err != nil {
		return err
	}
	if err := os.MkdirAll(variants, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{
		filepath.Join(out, marker):            []byte("mesh/ and variants/ here are written by bench/genmesh; mesh/ is replaced on the next run\n"),
		filepath.Join(mesh, "namespace.yaml"): []byte(namespaceYAML(c.Namespace)),
		filepath.Join(variants, "a.yaml"):     []byte(virtualServiceYAML(c.Namespace, 0, 90, 10)),
		filepath.Join(variants, "b.yaml"):     []byte(virtualServiceYAML(c.Namespace, 0, 80, 20)),
		// Starts as b, so that xdsload's first change (to a) changes something.
		filepath.Join(mesh, "vs-svc-0.yaml"): []byte(virtualServiceYAML(c.Namespace, 0, 80, 20)),
	}
	if c.Services > 1 {
		// svc-1 has no VirtualService: a plain endpoint change.
		files[filepath.Join(variants, "eds-a.yaml")] = []byte(endpointSliceYAML(c, 1, ip(c.EndpointPrefix, c.Services*c.Endpoints+1)))
		files[filepath.Join(variants, "eds-b.yaml")] = []byte(endpointSliceYAML(c, 1))
		files[filepath.Join(mesh, "eps-svc-1.yaml")] = []byte(endpointSliceYAML(c, 1))
	}
	width := len(fmt.Sprint(c.Services - 1))
	for i := range c.Services {
		var b bytes.Buffer
		b.WriteString(serviceYAML(c, i))
		if i != 1 { // svc-1's EndpointSlice lives in eps-svc-1.yaml
			b.WriteString("---\n")
			b.WriteString(endpointSliceYAML(c, i))
		}
		if c.VSEvery > 0 && i%c.VSEvery == 0 {
			if i != 0 { // svc-0's VirtualService lives in vs-svc-0.yaml
				b.WriteString("---\n")
				b.WriteString(virtualServiceYAML(c.Namespace, i, 90, 10))
			}
			b.WriteString("---\n")
			b.WriteString(destinationRuleYAML(c.Namespace, i))
		}
		files[filepath.Join(mesh, fmt.Sprintf("svc-%0*d.yaml", width, i))] = b.Bytes()
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// prepare makes dir (out/mesh) empty: it may not exist, be empty, or be one
// genmesh wrote before (out holds genmesh's marker file).
func prepare(out, dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(ents) == 0:
	default:
		if _, err := os.Stat(filepath.Join(out, marker)); err != nil {
			return fmt.Errorf("%s is not empty and was not written by genmesh; refusing to replace it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return os.MkdirAll(dir, 0o755)
}

func host(ns string, i int) string { return fmt.Sprintf("svc-%d.%s.svc.cluster.local", i, ns) }

func namespaceYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
`, ns)
}

func serviceYAML(c config, i int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: svc-%[1]d
  namespace: %[2]s
  labels:
    app: svc-%[1]d
spec:
  type: ClusterIP
  clusterIP: %[3]s
  ports:
  - name: http
    port: 8080
    targetPort: 8080
    protocol: TCP
`, i, c.Namespace, ip(c.ClusterIPPrefix, i+1))
}

// endpointSliceYAML is service i's slice: its c.Endpoints addresses, then extra.
func endpointSliceYAML(c config, i int, extra ...string) string {
	var eps strings.Builder
	addrs := make([]string, 0, c.Endpoints+len(extra))
	for j := range c.Endpoints {
		addrs = append(addrs, ip(c.EndpointPrefix, i*c.Endpoints+j+1))
	}
	for _, a := range append(addrs, extra...) {
		fmt.Fprintf(&eps, "- addresses:\n  - %s\n  conditions:\n    ready: true\n", a)
	}
	list := "\n" + eps.String()
	if eps.Len() == 0 {
		list = " []\n"
	}
	return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-%[1]d-gen
  namespace: %[2]s
  labels:
    kubernetes.io/service-name: svc-%[1]d
    endpointslice.kubernetes.io/managed-by: genmesh
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:%[3]s`, i, c.Namespace, list)
}

func virtualServiceYAML(ns string, i, w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-%[1]d
  namespace: %[2]s
spec:
  hosts:
  - %[3]s
  http:
  - route:
    - destination:
        host: %[3]s
        subset: v1
        port:
          number: 8080
      weight: %[4]d
    - destination:
        host: %[3]s
        subset: v2
        port:
          number: 8080
      weight: %[5]d
`, i, ns, host(ns, i), w1, w2)
}

func destinationRuleYAML(ns string, i int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-%[1]d
  namespace: %[2]s
spec:
  host: %[3]s
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
`, i, ns, host(ns, i))
}
