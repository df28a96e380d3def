// Command build-kubectl builds the e2e tests' kubectl (module e2e/kubectl) into
// the rig's cache (or finds it there) and prints its path; `make test` runs it
// first so the cold build does not count against a test's timeout.
package main

import (
	"fmt"
	"os"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

func main() {
	bin, err := rig.BuildKubectl(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-kubectl:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
