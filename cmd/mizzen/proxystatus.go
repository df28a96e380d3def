package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/xds"
)

func newProxyStatusCommand() *cobra.Command {
	var addr, admin, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "proxy-status [proxy [--admin <envoy admin address>]]",
		Short: "Show each connected proxy's sync state per xDS type, or compare one proxy's config with mizzen's view",
		Long: "Without --admin: each connected proxy's sync state per xDS type (from mizzen's /debug/syncz), all of them\n" +
			"or those whose node ID contains [proxy].\n" +
			"With a proxy and --admin: compare what mizzen serves that proxy now (/debug/config_dump) with what the\n" +
			"proxy holds (its Envoy admin /config_dump), per type: \"Clusters Match\", or \"Clusters Don't Match\"\n" +
			"and a unified diff of the JSON. Exits 1 when a type does not match.",
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
			defer cancel()
			return proxyIDs(ctx, addr), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if admin != "" {
				if len(args) == 0 {
					return errors.New("--admin compares one proxy: name it (see mizzen proxy-status)")
				}
				return runProxyDiff(ctx, cmd.OutOrStdout(), output, addr, admin, args[0])
			}
			rows, err := fetchSyncz(ctx, addr)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				rows = filterProxies(rows, args[0])
				if len(rows) == 0 {
					return fmt.Errorf("no connected proxy matches %q", args[0])
				}
			}
			return printProxyStatus(cmd.OutOrStdout(), output, rows)
		},
	}
	addMizzenFlag(cmd, cmd.Flags(), &addr)
	cmd.Flags().StringVar(&admin, "admin", "", "with a proxy: compare its config, read from this Envoy admin address (e.g. 127.0.0.1:15000), with mizzen's view")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for mizzen or Envoy")
	return cmd
}

func fetchSyncz(ctx context.Context, addr string) ([]xds.ProxySyncStatus, error) {
	body, err := httpGet(ctx, baseURL(addr)+"/debug/syncz")
	if err != nil {
		return nil, fmt.Errorf("reaching mizzen at %s: %w", addr, err)
	}
	var rows []xds.ProxySyncStatus
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("decoding syncz: %w", err)
	}
	return rows, nil
}

// filterProxies keeps proxies whose ID contains name (a pod name, pod.namespace
// or a whole node ID all work).
func filterProxies(rows []xds.ProxySyncStatus, name string) []xds.ProxySyncStatus {
	var out []xds.ProxySyncStatus
	for _, r := range rows {
		if strings.Contains(r.ProxyID, name) {
			out = append(out, r)
		}
	}
	return out
}

func printProxyStatus(out io.Writer, format string, rows []xds.ProxySyncStatus) error {
	if done, err := printStructured(out, format, rows); done {
		return err
	}
	switch format {
	case "table", "":
	default:
		return fmt.Errorf("-o %s: want table, json or yaml", format)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tCDS\tLDS\tEDS\tRDS\tSDS\tXDS\tLAST CHANGE\tNACK")
	for _, r := range rows {
		nack := ""
		for _, t := range []string{"cds", "lds", "eds", "rds", "sds"} {
			if m := r.Types[t].NackMessage; m != "" {
				nack = t
				if names := r.Types[t].NackedResources; len(names) > 0 {
					nack += " [" + strings.Join(names, ", ") + "]"
				}
				nack += ": " + m
				break
			}
		}
		sds := "-" // no identity: no secrets
		if st, ok := r.Types["sds"]; ok {
			sds = st.State
		}
		protocol := r.Protocol
		if protocol == "" {
			protocol = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", proxyName(r.ProxyID), r.Type,
			r.Types["cds"].State, r.Types["lds"].State, r.Types["eds"].State, r.Types["rds"].State, sds, protocol, lastChange(r.LastChange), nack)
	}
	return tw.Flush()
}

// lastChange: "#42 ACKED 35ms" — the latest change that touched the proxy
// (details: /debug/changes?id=42).
func lastChange(c *xds.ChangeRef) string {
	if c == nil {
		return "-"
	}
	s := fmt.Sprintf("#%d %s", c.ID, c.State)
	if c.State == "ACKED" {
		s += " " + c.Latency.Round(time.Millisecond).String()
	}
	return s
}

// proxyName shows pod.namespace as istioctl does, the whole ID otherwise.
func proxyName(id string) string {
	parts := strings.Split(id, "~")
	if len(parts) == 4 {
		return parts[2]
	}
	return id
}
