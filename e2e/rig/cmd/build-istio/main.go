// Command build-istio builds Istio's pilot-agent, istioctl and pilot-discovery
// (module e2e/istio, from the Go module proxy) into the rig's cache, or finds
// them there, and prints the directory holding them; `make test` runs it first
// so the cold build (tens of minutes on 2 cores) does not count against a
// test's timeout.
package main

import (
	"fmt"
	"os"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

func main() {
	dir, err := rig.BuildIstio(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-istio:", err)
		os.Exit(1)
	}
	fmt.Println(dir)
}
