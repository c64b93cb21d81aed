// Command rampart is the engineer's CLI: ssh config, login and server list.
//
// Its commands arrive with the client work (see docs/); until then this
// binary only reports its version.
package main

import (
	"fmt"
	"os"

	"github.com/rampart-ssh/rampart/api"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println("rampart", api.Version)
		return
	}
	fmt.Fprintln(os.Stderr, "rampart: setup, login and servers are not built yet; only `rampart version` works in this release. Plain `ssh` to a node works without it.")
	os.Exit(2)
}
