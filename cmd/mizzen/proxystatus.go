package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/xds"
)

func newProxyStatusCommand() *cobra.Command {
	var addr, output string
	cmd := &cobra.Command{
		Use:   "proxy-status [proxy]",
		Short: "Show each connected proxy's sync state per xDS type (from mizzen's /debug/syncz)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
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
	cmd.Flags().StringVar(&addr, "monitoring-addr", "127.0.0.1:15014", "mizzen's monitoring address")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func fetchSyncz(ctx context.Context, addr string) ([]xds.ProxySyncStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/syncz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching mizzen at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mizzen %s/debug/syncz: %s", addr, resp.Status)
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
	fmt.Fprintln(tw, "NAME\tTYPE\tCDS\tLDS\tEDS\tRDS\tNACK")
	for _, r := range rows {
		nack := ""
		for _, t := range []string{"cds", "lds", "eds", "rds"} {
			if m := r.Types[t].NackMessage; m != "" {
				nack = t + ": " + m
				break
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", proxyName(r.ProxyID), r.Type,
			r.Types["cds"].State, r.Types["lds"].State, r.Types["eds"].State, r.Types["rds"].State, nack)
	}
	return tw.Flush()
}

// proxyName shows pod.namespace as istioctl does, the whole ID otherwise.
func proxyName(id string) string {
	parts := strings.Split(id, "~")
	if len(parts) == 4 {
		return parts[2]
	}
	return id
}
