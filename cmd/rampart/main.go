// Command rampart is the engineer's CLI: ssh setup, sign-in, the servers
// one may reach, and ssh/scp through the bastion (package cli).
package main

import (
	"os"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/cmd/rampart/internal/cli"
)

func main() {
	os.Exit(cli.Main(api.Version, os.Args[1:]))
}
