// Command rampart-agent runs on every target server and keeps its accounts,
// groups, sudo rules and sshd trust in step with the cluster.
//
// Enrollment, the pull loop and the host appliers arrive with the agent work
// (see docs/); until then this binary only reports its version.
package main

import (
	"fmt"
	"os"

	"github.com/rampart-ssh/rampart/api"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println("rampart-agent", api.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "rampart-agent: enrollment and the pull loop are not built yet; only `rampart-agent version` works in this release")
	os.Exit(2)
}
