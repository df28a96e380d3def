package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/mizzenmesh/mizzen/pkg/analyze"
	"github.com/mizzenmesh/mizzen/pkg/inject"
	"github.com/mizzenmesh/mizzen/pkg/model"
	"github.com/mizzenmesh/mizzen/pkg/source/file"
	"github.com/mizzenmesh/mizzen/pkg/source/kube"
)

type analyzeOptions struct {
	files              []string
	kubeconfig         string
	output             string
	timeout            time.Duration
	discoverySelectors []string
	injectorConfig     string
}

// errFound makes `mizzen analyze` exit non-zero after printing its findings.
var errFound = errors.New("errors found")

func newAnalyzeCommand() *cobra.Command {
	o := analyzeOptions{}
	cmd := &cobra.Command{
		Use:   "analyze (-f <file|dir>... | --kubeconfig <path>)",
		Short: "Check mesh config for problems, naming the object and field of each",
		Long: "Check Kubernetes and Istio config the way mizzen reads it: every object mizzen would skip (error)\n" +
			"or apply with a caveat (warning), plus cross-object checks. Exits 1 when there are errors.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			return runAnalyze(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "file", "f", nil, "YAML file or directory to analyze (repeatable)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "analyze the cluster of this kubeconfig instead of files")
	f.StringVarP(&o.output, "output", "o", "text", "text, json or yaml")
	f.DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait for the cluster's config")
	f.StringVar(&o.injectorConfig, "injector-config", "",
		"also check this istio-sidecar-injector ConfigMap (YAML) as mizzen's injector reads it (with --kubeconfig: the cluster's is checked)")
	f.StringArrayVar(&o.discoverySelectors, "discovery-selectors", nil,
		"analyze as mizzen serve --discovery-selectors sees the mesh: only namespaces matching one of these selectors (repeatable)")
	return cmd
}

func runAnalyze(ctx context.Context, o analyzeOptions, out io.Writer) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	selectors, err := parseSelectors(o.discoverySelectors)
	if err != nil {
		return err
	}
	var in model.Inputs
	var findings []analyze.Finding
	var injector *corev1.ConfigMap
	if o.injectorConfig != "" {
		cm, err := readConfigMap(o.injectorConfig)
		if err != nil {
			return fmt.Errorf("--injector-config %s: %w", o.injectorConfig, err)
		}
		if cm == nil {
			return fmt.Errorf("--injector-config %s: want the %s ConfigMap", o.injectorConfig, inject.ConfigMapName)
		}
		injector = cm
	}
	switch {
	case len(o.files) > 0 && o.kubeconfig != "":
		return errors.New("-f and --kubeconfig exclude each other")
	case len(o.files) > 0:
		for _, path := range o.files {
			got, errs, err := loadPath(path, quiet)
			if err != nil {
				return err
			}
			appendInputs(&in, got)
			for _, e := range errs {
				findings = append(findings, analyze.NewFinding(e.ConfigError()))
			}
		}
	case o.kubeconfig != "":
		cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
		if err != nil {
			return fmt.Errorf("--kubeconfig %s: %w", o.kubeconfig, err)
		}
		if injector == nil {
			// The cluster's injector ConfigMap, read once as the webhook
			// reads it; none is not a finding (mizzen's defaults apply).
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			cm, err := cs.CoreV1().ConfigMaps(model.MeshConfigMapNamespace).Get(ctx, inject.ConfigMapName, metav1.GetOptions{})
			switch {
			case err == nil:
				injector = cm
			case !apierrors.IsNotFound(err):
				return fmt.Errorf("reading ConfigMap %s/%s: %w", model.MeshConfigMapNamespace, inject.ConfigMapName, err)
			}
		}
		src, err := kube.New(cfg, kube.Options{Logger: quiet, OnError: func(e kube.Error) {
			findings = append(findings, analyze.NewFinding(model.ConfigError{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Field: e.Field, Code: "DecodeError", Message: e.Reason}))
		}})
		if err != nil {
			return err
		}
		synced := make(chan model.Inputs, 1)
		runCtx, stop := context.WithCancel(ctx)
		go func() {
			_ = src.Run(runCtx, func(got model.Inputs) {
				select {
				case synced <- got:
				default:
				}
			})
		}()
		select {
		case in = <-synced:
			stop()
		case <-ctx.Done():
			stop()
			return fmt.Errorf("reading the cluster's config: %w", ctx.Err())
		}
		findings = append(findings, listWorkloadControllers(ctx, cfg, &in)...)
	default:
		return errors.New("give files with -f, or a cluster with --kubeconfig")
	}
	meshYAML := ""
	for _, cm := range in.ConfigMaps {
		if cm.Name == model.MeshConfigMapName && cm.Namespace == model.MeshConfigMapNamespace {
			meshYAML = cm.Data[model.MeshConfigMapKey]
		}
	}
	if injector != nil {
		findings = append(findings, analyze.Injector(injector, meshYAML)...)
	}
	found, err := analyze.Analyze(&in, analyze.Options{DiscoverySelectors: selectors})
	if err != nil {
		return err
	}
	findings = append(findings, found...)
	if err := printFindings(out, o.output, findings); err != nil {
		return err
	}
	for _, f := range findings {
		if !f.Warning {
			return errFound
		}
	}
	return nil
}

// listWorkloadControllers adds the cluster's Deployments, StatefulSets,
// DaemonSets, ReplicaSets and Jobs to in: their pod templates are workloads
// for the analyzer even where no Pod runs (scaled to zero, not scheduled).
// mizzen serve does not watch them; one list each is enough here. A kind
// that cannot be listed is a finding, not a silent gap.
func listWorkloadControllers(ctx context.Context, cfg *rest.Config, in *model.Inputs) []analyze.Finding {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return []analyze.Finding{notListed("Deployment", err)}
	}
	var out []analyze.Finding
	all := metav1.ListOptions{}
	if l, err := client.AppsV1().Deployments("").List(ctx, all); err != nil {
		out = append(out, notListed("Deployment", err))
	} else {
		for i := range l.Items {
			in.Deployments = append(in.Deployments, &l.Items[i])
		}
	}
	if l, err := client.AppsV1().StatefulSets("").List(ctx, all); err != nil {
		out = append(out, notListed("StatefulSet", err))
	} else {
		for i := range l.Items {
			in.StatefulSets = append(in.StatefulSets, &l.Items[i])
		}
	}
	if l, err := client.AppsV1().DaemonSets("").List(ctx, all); err != nil {
		out = append(out, notListed("DaemonSet", err))
	} else {
		for i := range l.Items {
			in.DaemonSets = append(in.DaemonSets, &l.Items[i])
		}
	}
	if l, err := client.AppsV1().ReplicaSets("").List(ctx, all); err != nil {
		out = append(out, notListed("ReplicaSet", err))
	} else {
		for i := range l.Items {
			in.ReplicaSets = append(in.ReplicaSets, &l.Items[i])
		}
	}
	if l, err := client.BatchV1().Jobs("").List(ctx, all); err != nil {
		out = append(out, notListed("Job", err))
	} else {
		for i := range l.Items {
			in.Jobs = append(in.Jobs, &l.Items[i])
		}
	}
	return out
}

func notListed(kind string, err error) analyze.Finding {
	return analyze.NewFinding(model.ConfigError{Kind: kind, Code: "NotListed", Warning: true,
		Message: fmt.Sprintf("cannot list %ss (%v): their pod templates are not analyzed", kind, err)})
}

// loadPath reads a directory, or one file (through a directory holding only it).
func loadPath(path string, log *slog.Logger) (model.Inputs, []*file.Error, error) {
	st, err := os.Stat(path)
	if err != nil {
		return model.Inputs{}, nil, err
	}
	dir := path
	if !st.IsDir() {
		tmp, err := os.MkdirTemp("", "mizzen-analyze-")
		if err != nil {
			return model.Inputs{}, nil, err
		}
		defer os.RemoveAll(tmp)
		abs, err := filepath.Abs(path)
		if err != nil {
			return model.Inputs{}, nil, err
		}
		name := filepath.Base(path)
		if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" && ext != ".json" {
			name += ".yaml"
		}
		if err := os.Symlink(abs, filepath.Join(tmp, name)); err != nil {
			return model.Inputs{}, nil, err
		}
		dir = tmp
	}
	in, errs := file.New(dir, file.Options{Logger: log, KeepOtherSecrets: true}).Load()
	for _, e := range errs {
		if !st.IsDir() {
			e.File = path // name the user's file, not the link
		}
	}
	return in, errs, nil
}

// appendInputs adds every object of src to dst. It walks model.Inputs by
// reflection, so a kind added there (as Secrets once were, and went unread
// here) is never left out: every slice field is a list of objects.
func appendInputs(dst *model.Inputs, src model.Inputs) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := range d.NumField() {
		if d.Field(i).Kind() == reflect.Slice {
			d.Field(i).Set(reflect.AppendSlice(d.Field(i), s.Field(i)))
		}
	}
}

type finding struct {
	Level     string `json:"level"`
	ID        string `json:"id"`
	Code      string `json:"code"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
	Hint      string `json:"hint,omitempty"`
}

func printFindings(out io.Writer, format string, fs []analyze.Finding) error {
	rows := make([]finding, 0, len(fs))
	for _, f := range fs {
		rows = append(rows, finding{f.Level(), f.ID, f.Code, f.Kind, f.Namespace, f.Name, f.Field, f.Message, f.Hint})
	}
	if done, err := printStructured(out, format, rows); done {
		return err
	}
	switch format {
	case "text", "table", "":
		if len(rows) == 0 {
			_, err := fmt.Fprintln(out, "✔ No problems found.")
			return err
		}
		for _, f := range fs {
			if _, err := fmt.Fprintln(out, f.String()); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("-o %s: want text, json or yaml", format)
}

// printStructured writes v as json or yaml when format asks for one of them;
// done is false for any other format (the caller's table or text).
func printStructured(out io.Writer, format string, v any) (done bool, err error) {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = out.Write(b)
		return true, err
	}
	return false, nil
}
