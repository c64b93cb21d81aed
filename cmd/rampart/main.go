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

const usage = `Usage: rampart version

rampart will set up ssh (rampart setup), sign in (rampart login) and list
the servers you may reach (rampart servers). Those commands are not built
yet; plain ssh to a node works without them:

  ssh -J you@bastion server    reach a server
  ssh you@bastion              who you are and the servers you may reach
`

func main() {
	if len(os.Args) == 2 {
		switch os.Args[1] {
		case "version", "--version":
			fmt.Println("rampart", api.Version)
			return
		case "help", "--help", "-h":
			fmt.Print(usage)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "rampart: setup, login and servers are not built yet; only `rampart version` works in this release. Plain `ssh` to a node works without it.")
	os.Exit(2)
}
