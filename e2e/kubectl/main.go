// Command kubectl is the real kubectl, built from the k8s.io/kubectl module at
// the same Kubernetes release as the test kube-apiserver (e2e/apiserver), so the
// e2e tests can run `kubectl apply --dry-run=server -k deploy/` exactly as a
// user would. It is k8s.io/kubernetes/cmd/kubectl's main, unchanged in
// substance; it lives in its own module so neither the product's go.mod nor the
// apiserver's carries kubectl's dependencies (kustomize among them).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Client auth plugins, as in cmd/kubectl.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func main() {
	// As in cmd/kubectl: the verbosity must be known before flags are parsed.
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
