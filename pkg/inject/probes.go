package inject

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The agent's probe rewrite, as Istio's injector does it: with mTLS the
// kubelet's probes cannot reach the app through the sidecar, so every
// httpGet, tcpSocket and gRPC probe (and httpGet/tcpSocket lifecycle hook) of
// the app's containers becomes an httpGet on the agent's status port at
// /app-health/<container>/{readyz,livez,startupz} (/app-lifecycle/… for
// hooks), and the original probes go to the agent in ISTIO_KUBE_APP_PROBERS,
// which the agent runs from inside the pod.
const (
	EnvKubeAppProbers           = "ISTIO_KUBE_APP_PROBERS"
	AnnotationRewriteAppProbers = "sidecar.istio.io/rewriteAppHTTPProbers"
	AnnotationStatusPort        = "status.sidecar.istio.io/port"
)

// appProber is one entry of ISTIO_KUBE_APP_PROBERS.
type appProber struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

func proberURLs(container string) (readyz, livez, startupz, prestopz, poststartz string) {
	return "/app-health/" + container + "/readyz", "/app-health/" + container + "/livez",
		"/app-health/" + container + "/startupz", "/app-lifecycle/" + container + "/prestopz",
		"/app-lifecycle/" + container + "/poststartz"
}

func probeToProber(p *corev1.Probe) *appProber {
	switch {
	case p == nil:
		return nil
	case p.HTTPGet != nil:
		return &appProber{HTTPGet: p.HTTPGet.DeepCopy(), TimeoutSeconds: p.TimeoutSeconds}
	case p.TCPSocket != nil:
		return &appProber{TCPSocket: p.TCPSocket.DeepCopy(), TimeoutSeconds: p.TimeoutSeconds}
	case p.GRPC != nil:
		return &appProber{GRPC: p.GRPC.DeepCopy(), TimeoutSeconds: p.TimeoutSeconds}
	}
	return nil
}

func hookToProber(h *corev1.LifecycleHandler) *appProber {
	switch {
	case h == nil:
		return nil
	case h.HTTPGet != nil:
		return &appProber{HTTPGet: h.HTTPGet.DeepCopy()}
	case h.TCPSocket != nil:
		return &appProber{TCPSocket: h.TCPSocket.DeepCopy()}
	}
	return nil
}

// appProbers is the ISTIO_KUBE_APP_PROBERS value for the pod ("" for none).
// Named ports are resolved against the container's ports (the agent cannot);
// a probe naming an unknown port, or one already on the status port, is left
// out.
func appProbers(pod *corev1.Pod, statusPort int32) (string, error) {
	out := map[string]*appProber{}
	resolve := func(p *appProber, ports map[string]int32) *appProber {
		if p == nil || p.GRPC != nil {
			return p // gRPC probes have numeric ports only
		}
		var port *intstr.IntOrString
		if p.HTTPGet != nil {
			port = &p.HTTPGet.Port
		} else {
			port = &p.TCPSocket.Port
		}
		if port.Type == intstr.String {
			n, ok := ports[port.StrVal]
			if !ok {
				return nil
			}
			*port = intstr.FromInt32(n)
		} else if port.IntVal == statusPort {
			return nil
		}
		return p
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == ProxyContainerName {
			continue
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			if p.Name != "" {
				ports[p.Name] = p.ContainerPort
			}
		}
		readyz, livez, startupz, prestopz, poststartz := proberURLs(c.Name)
		set := func(url string, p *appProber) {
			if p = resolve(p, ports); p != nil {
				out[url] = p
			}
		}
		set(readyz, probeToProber(c.ReadinessProbe))
		set(livez, probeToProber(c.LivenessProbe))
		set(startupz, probeToProber(c.StartupProbe))
		if c.Lifecycle != nil {
			set(prestopz, hookToProber(c.Lifecycle.PreStop))
			set(poststartz, hookToProber(c.Lifecycle.PostStart))
		}
	}
	if len(out) == 0 {
		return "", nil
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// rewriteProbes points the app containers' probes and hooks at the agent.
func rewriteProbes(pod *corev1.Pod, statusPort int) {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			c := &cs[i]
			if c.Name == ProxyContainerName {
				continue
			}
			readyz, livez, startupz, prestopz, poststartz := proberURLs(c.Name)
			c.ReadinessProbe = rewriteProbe(c.ReadinessProbe, readyz, statusPort)
			c.LivenessProbe = rewriteProbe(c.LivenessProbe, livez, statusPort)
			c.StartupProbe = rewriteProbe(c.StartupProbe, startupz, statusPort)
			if c.Lifecycle != nil {
				c.Lifecycle.PreStop = rewriteHook(c.Lifecycle.PreStop, prestopz, statusPort)
				c.Lifecycle.PostStart = rewriteHook(c.Lifecycle.PostStart, poststartz, statusPort)
			}
		}
	}
}

// agentGet is the rewritten action: the kubelet speaks plain HTTP to the
// agent, which speaks HTTPS to the app if the probe said so.
func agentGet(from *corev1.HTTPGetAction, url string, port int) *corev1.HTTPGetAction {
	a := &corev1.HTTPGetAction{}
	if from != nil {
		a = from.DeepCopy()
	}
	a.Port = intstr.FromInt32(int32(port))
	a.Path = url
	if a.Scheme == corev1.URISchemeHTTPS {
		a.Scheme = corev1.URISchemeHTTP
	}
	return a
}

func rewriteProbe(p *corev1.Probe, url string, port int) *corev1.Probe {
	if p == nil || (p.HTTPGet == nil && p.TCPSocket == nil && p.GRPC == nil) {
		return p
	}
	out := p.DeepCopy()
	out.HTTPGet = agentGet(p.HTTPGet, url, port)
	out.TCPSocket, out.GRPC = nil, nil
	return out
}

func rewriteHook(h *corev1.LifecycleHandler, url string, port int) *corev1.LifecycleHandler {
	if h == nil || (h.HTTPGet == nil && h.TCPSocket == nil) {
		return h
	}
	out := h.DeepCopy()
	out.HTTPGet = agentGet(h.HTTPGet, url, port)
	out.TCPSocket = nil
	return out
}

// applyProbeRewrite does the rewrite when the pod (sidecar.istio.io/
// rewriteAppHTTPProbers) or the values (sidecarInjectorWebhook.
// rewriteAppHTTPProbe) ask for it.
func applyProbeRewrite(pod *corev1.Pod, valuesDefault bool, meshStatusPort int32) error {
	proxy := findContainer(pod, ProxyContainerName)
	if proxy == nil {
		return nil
	}
	rewrite := valuesDefault
	if v, ok := pod.Annotations[AnnotationRewriteAppProbers]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			rewrite = b
		}
	}
	if !rewrite {
		return nil
	}
	probers, err := appProbers(pod, meshStatusPort)
	if err != nil {
		return err
	}
	if probers != "" {
		proxy.Env = append(proxy.Env, corev1.EnvVar{Name: EnvKubeAppProbers, Value: probers})
	}
	port := int(meshStatusPort)
	if v, ok := pod.Annotations[AnnotationStatusPort]; ok {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("metadata.annotations[%s]: %q is not a port", AnnotationStatusPort, v)
		}
		port = p
	}
	rewriteProbes(pod, port)
	return nil
}

// findContainer finds a container by name among the containers, then the
// init containers (a native sidecar is one).
func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}
