package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/pkg/inject"
	"github.com/mizzenmesh/mizzen/pkg/model"
)

type injectOptions struct {
	file           string
	output         string
	injectorConfig string
	meshConfig     string
}

func newInjectCommand() *cobra.Command {
	o := injectOptions{}
	cmd := &cobra.Command{
		Use:   "inject -f <file|-> [-o <file>]",
		Short: "Add mizzen's sidecar to workloads in YAML, as the injection webhook would (kube-inject)",
		Long: "Read Kubernetes YAML (multi-document, or a List) and add the sidecar to the pod template of every\n" +
			"Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob, exactly as\n" +
			"the /inject webhook does for a namespace labelled istio-injection=enabled; pods with\n" +
			"sidecar.istio.io/inject: \"false\" are left alone. Other documents are printed unchanged.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInject(o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", "YAML to inject (- for stdin)")
	f.StringVarP(&o.output, "output", "o", "", "write here instead of stdout")
	f.StringVar(&o.injectorConfig, "injector-config", "",
		"the istio-sidecar-injector ConfigMap (YAML, keys values and config) to take images, resources and templates from")
	f.StringVar(&o.meshConfig, "meshconfig", "",
		"mesh config: the istio ConfigMap (key mesh) or MeshConfig YAML; defaultConfig.discoveryAddress and concurrency are used")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func runInject(o injectOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := loadInjectorConfig(o.injectorConfig, o.meshConfig)
	if err != nil {
		return err
	}
	in := stdin
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var out bytes.Buffer
	results, err := inject.InjectYAML(in, cfg, &out)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	// What the injector config asks for and mizzen does not apply, and what
	// a template could not do, go to stderr: nothing is dropped unsaid.
	for _, n := range cfg.Notes {
		fmt.Fprintf(stderr, "warning: injector config: %s\n", n)
	}
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(stderr, "warning: %s %s/%s: %s\n", r.Kind, r.Namespace, r.Name, n)
		}
	}
	if o.output == "" {
		_, err = stdout.Write(out.Bytes())
		return err
	}
	return os.WriteFile(o.output, out.Bytes(), 0o644)
}

// loadInjectorConfig reads --injector-config (a ConfigMap) and --meshconfig
// (a ConfigMap with key mesh, or MeshConfig itself).
func loadInjectorConfig(injectorPath, meshPath string) (*inject.Config, error) {
	data := map[string]string{}
	if injectorPath != "" {
		cm, err := readConfigMap(injectorPath)
		if err != nil {
			return nil, fmt.Errorf("--injector-config %s: %w", injectorPath, err)
		}
		if cm == nil {
			return nil, fmt.Errorf("--injector-config %s: want the %s ConfigMap (keys %s and %s)", injectorPath,
				inject.ConfigMapName, inject.ValuesKey, inject.ConfigKey)
		}
		data = cm.Data
	}
	meshYAML := ""
	if meshPath != "" {
		cm, err := readConfigMap(meshPath)
		if err != nil {
			return nil, fmt.Errorf("--meshconfig %s: %w", meshPath, err)
		}
		if cm != nil {
			meshYAML = cm.Data[model.MeshConfigMapKey]
		} else {
			b, _ := os.ReadFile(meshPath)
			meshYAML = string(b)
		}
	}
	cfg, err := inject.FromConfigMap(data, meshYAML)
	if err != nil {
		return nil, fmt.Errorf("injector config: %w", err)
	}
	return cfg, nil
}

// readConfigMap returns the ConfigMap in path, or nil if the file holds
// something else.
func readConfigMap(path string) (*corev1.ConfigMap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var h struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(b, &h); err != nil || h.Kind != "ConfigMap" {
		return nil, nil
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		return nil, err
	}
	return &cm, nil
}

func newCaptureCommand() *cobra.Command {
	c := inject.DefaultCapture()
	var mode string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "capture [flags]",
		Short: "Install the pod's traffic capture (istio-init): istio-iptables' nat rules, with its flags",
		Long: "Install the sidecar's traffic capture in the current network namespace, as Istio's istio-init\n" +
			"container does: outbound TCP to the proxy's port (15001), inbound TCP to 15006, the proxy's uid/gid\n" +
			"(1337) let through. The rules are loaded atomically with iptables-restore --noflush and printed.\n" +
			"The injected istio-init container runs it; it needs NET_ADMIN and NET_RAW.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mode != "REDIRECT" {
				return fmt.Errorf("-m %s: only REDIRECT interception is supported", mode)
			}
			rules, err := c.Rules()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dryRun {
				_, err := io.WriteString(out, rules)
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			restore := exec.CommandContext(ctx, "iptables-restore", "--noflush")
			restore.Stdin = strings.NewReader(rules)
			if b, err := restore.CombinedOutput(); err != nil {
				var ee *exec.Error
				if errors.As(err, &ee) {
					return fmt.Errorf("iptables-restore not found (the init image needs iptables): %w", err)
				}
				return fmt.Errorf("iptables-restore: %v: %s\nrules:\n%s", err, bytes.TrimSpace(b), rules)
			}
			_, err = fmt.Fprintf(out, "capture installed (iptables-restore --noflush):\n%s", rules)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVarP(&c.ProxyPort, "envoy-port", "p", c.ProxyPort, "port outbound TCP is redirected to")
	f.IntVarP(&c.InboundCapturePort, "inbound-capture-port", "z", c.InboundCapturePort, "port inbound TCP is redirected to")
	f.StringVarP(&c.ProxyUID, "proxy-uid", "u", c.ProxyUID, "uid(s) of the proxy, whose traffic is not captured")
	f.StringVarP(&c.ProxyGID, "proxy-gid", "g", c.ProxyGID, "gid(s) of the proxy, whose traffic is not captured")
	f.StringVarP(&mode, "istio-inbound-interception-mode", "m", "REDIRECT", "inbound interception mode (REDIRECT only)")
	f.StringVarP(&c.OutboundIPRangesInclude, "istio-service-cidr", "i", c.OutboundIPRangesInclude, `outbound CIDRs captured: "*" all, "" none`)
	f.StringVarP(&c.OutboundIPRangesExclude, "istio-service-exclude-cidr", "x", "", "outbound CIDRs never captured")
	f.StringVarP(&c.InboundPorts, "istio-inbound-ports", "b", c.InboundPorts, `inbound ports captured: "*" all, "" none`)
	f.StringVarP(&c.InboundPortsExclude, "istio-local-exclude-ports", "d", "", `inbound ports never captured (with -b "*")`)
	f.StringVarP(&c.OutboundPortsExclude, "istio-local-outbound-ports-exclude", "o", "", "outbound ports never captured")
	f.BoolVar(&dryRun, "dry-run", false, "print the rules instead of installing them")
	return cmd
}
