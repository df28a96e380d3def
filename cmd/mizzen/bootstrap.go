package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/pkg/bootstrap"
	"github.com/mizzenmesh/mizzen/pkg/model"
)

// newBootstrapCommand prints the Envoy bootstrap an injected sidecar runs
// with, for Envoys started by hand (a VM, a test bench): the same secure
// connection to mizzen, with that proxy's node ID and metadata.
func newBootstrapCommand() *cobra.Command {
	var (
		o                        bootstrap.Options
		ip, pod, ns, sa, cluster string
		labels                   []string
		router                   bool
	)
	cmd := &cobra.Command{
		Use:   "bootstrap --ip <pod ip> --pod <name> --namespace <ns> [--router]",
		Short: "Print a sidecar's or gateway's Envoy bootstrap (JSON) for mizzen's secure port",
		Long: "Prints the bootstrap `mizzen inject` gives istio-proxy, filled in for one proxy: Envoy's Google gRPC\n" +
			"client to mizzen's secure port, TLS verified with the mesh root (--root-cert), the service-account\n" +
			"token (--token, audience istio-ca) sent with every stream, readiness on 15021. Run it with\n" +
			"`envoy -c <file>`. The token must be one the apiserver issued for --service-account in --namespace,\n" +
			"or mizzen refuses the stream. With --router the proxy is a gateway (node ID router~…): it gets the\n" +
			"listeners of the Gateways whose selector matches its --label set, on the targetPorts of the Service\n" +
			"at --ip; servers with certificate files (serverCertificate/privateKey/caCertificates) are read by\n" +
			"Envoy from its own filesystem.",
		Example: "  mizzen bootstrap --ip 10.1.0.9 --pod client-0 --namespace default --service-account client \\\n" +
			"    --label app=client --discovery-address istiod.istio-system.svc:15012 > bootstrap.json\n" +
			"  mizzen bootstrap --router --ip 10.1.0.20 --pod istio-ingressgateway-0 --namespace istio-system \\\n" +
			"    --service-account istio-ingressgateway --label istio=ingressgateway --label app=istio-ingressgateway > gateway.json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ip == "" || pod == "" || ns == "" {
				return fmt.Errorf("--ip, --pod and --namespace are required")
			}
			lbls := map[string]any{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				lbls[k] = v
			}
			kind := model.SidecarProxy
			if router {
				kind = model.RouterProxy
			}
			o.NodeID = string(kind) + "~" + ip + "~" + pod + "." + ns + "~" + ns + ".svc.cluster.local"
			if _, err := model.ParseProxy(o.NodeID, nil); err != nil {
				return err
			}
			o.Cluster = cluster
			if o.Cluster == "" {
				o.Cluster = pod + "." + ns
			}
			o.Metadata = map[string]any{
				model.MetaNamespace: ns, model.MetaServiceAccount: sa, model.MetaLabels: lbls,
				model.MetaInstanceIPs: ip, "NAME": pod,
			}
			if o.AdminAddress != bootstrap.AdminAddress {
				// The 15090 stats listener forwards to the admin: say where it is.
				o.Metadata[model.MetaAdminAddress] = o.AdminAddress
			}
			out, err := bootstrap.Sidecar(o)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&ip, "ip", "", "the proxy's (pod's) IP address")
	f.StringVar(&pod, "pod", "", "pod (or VM) name")
	f.StringVar(&ns, "namespace", "", "namespace of the workload")
	f.StringVar(&sa, "service-account", "default", "service account the token belongs to")
	f.StringArrayVar(&labels, "label", nil, "workload label key=value (repeatable; selects VirtualService sourceLabels, policies)")
	f.BoolVar(&router, "router", false, "a gateway (node ID router~…) instead of a sidecar")
	f.StringVar(&cluster, "cluster", "", "Envoy service cluster (default <pod>.<namespace>)")
	f.StringVar(&o.DiscoveryAddress, "discovery-address", bootstrap.DefaultDiscoveryAddress, "mizzen's secure port, host:port")
	f.StringVar(&o.ServerName, "server-name", "", "name mizzen's certificate is verified against (default: the discovery address's host)")
	f.StringVar(&o.RootCertPath, "root-cert", bootstrap.RootCertPath, "mesh root certificate file (ConfigMap istio-ca-root-cert, key root-cert.pem)")
	f.StringVar(&o.TokenPath, "token", bootstrap.TokenPath, "service-account token file (audience istio-ca)")
	f.StringVar(&o.AdminAddress, "admin-address", bootstrap.AdminAddress, "Envoy admin address")
	return cmd
}
