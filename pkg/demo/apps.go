package demo

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/e2e/echo"
)

// Workload is one Pod of the config dir, played by an echo app.
type Workload struct {
	Pod     string // productpage-v1-0
	Service string // the Pod's app label
	Version string
	Addr    string // podIP:port, the port from the Service's EndpointSlice
}

// Workloads reads the Pods and EndpointSlices of dir (top level, *.yaml):
// each Pod with an address becomes an app listening where the EndpointSlices
// send its traffic. The example is the single source of the addresses, so the
// demo can't drift from it.
func Workloads(dir string) ([]Workload, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	type object struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Status struct {
			PodIP string `json:"podIP"`
		} `json:"status"`
		Endpoints []struct {
			TargetRef struct {
				Name string `json:"name"`
			} `json:"targetRef"`
		} `json:"endpoints"`
		Ports []struct {
			Port int `json:"port"`
		} `json:"ports"`
	}
	var pods []object
	portOf := map[string]int{} // pod name -> port
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range bytes.Split(data, []byte("\n---")) {
			var o object
			if err := yaml.Unmarshal(doc, &o); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			switch o.Kind {
			case "Pod":
				if o.Status.PodIP != "" {
					pods = append(pods, o)
				}
			case "EndpointSlice":
				for _, e := range o.Endpoints {
					for _, p := range o.Ports {
						portOf[e.TargetRef.Name] = p.Port
					}
				}
			}
		}
	}
	var out []Workload
	for _, p := range pods {
		port := portOf[p.Metadata.Name]
		if port == 0 {
			continue // not behind a Service: nothing would reach it
		}
		out = append(out, Workload{Pod: p.Metadata.Name, Service: p.Metadata.Labels["app"], Version: p.Metadata.Labels["version"],
			Addr: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no Pods with an address behind an EndpointSlice", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out, nil
}

func startApp(w Workload) (func(), error) {
	s, err := echo.Start(w.Addr, echo.Options{Service: w.Service, Version: w.Version, Pod: w.Pod})
	if err != nil {
		return nil, err
	}
	return func() { _ = s.Close() }, nil
}
