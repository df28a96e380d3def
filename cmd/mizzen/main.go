// Command mizzen is a lean, Istio-compatible xDS control plane.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mizzenmesh/mizzen/pkg/version"
)

func main() {
	root := &cobra.Command{
		Use:           "mizzen",
		Short:         "mizzen: a lean, Istio-compatible xDS control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newBootstrapCommand(), newAnalyzeCommand(), newProxyStatusCommand(), newProxyConfigCommand(), newExplainCommand(), newInjectCommand(), newCaptureCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print mizzen's version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "mizzen %s (commit %s)\n", version.Version, version.Commit)
		},
	})
	if err := root.Execute(); err != nil {
		// errFound: the command printed what it found (analyze's errors,
		// proxy-status's differences) and only the exit code is left to set.
		if !errors.Is(err, errFound) {
			fmt.Fprintln(os.Stderr, "mizzen:", err)
		}
		os.Exit(1)
	}
}
