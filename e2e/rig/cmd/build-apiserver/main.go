// Command build-apiserver builds the e2e kube-apiserver into the rig's cache (or
// finds it there) and prints its path; `make test` runs it first so the cold
// build (minutes on 2 cores) does not count against a test's timeout.
package main

import (
	"fmt"
	"os"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

func main() {
	bin, err := rig.BuildAPIServer(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-apiserver:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
