package frontdoor

import (
	"fmt"
	"io"
	"net"
)

// The greeting's next steps: a person signed in without a key learns how to
// make one, so that the browser is not needed next time; an administrator
// with no servers learns the commands that enroll the first one.

// writeKeyHint follows "no key bound" in the greeting.
func writeKeyHint(out io.Writer) {
	fmt.Fprintf(out, "  Make a key so that the next login needs no browser: ssh-keygen -t ed25519\r\n"+
		"  then sign in once more: ssh offers it by itself, and one approval binds it to you.\r\n")
}

// writeFirstServerHint follows "No servers are available to you yet." for
// an administrator: create a project, grant it, enroll a server with a token.
func writeFirstServerHint(out io.Writer, jumpHost string) {
	admin := adminCommand(jumpHost)
	fmt.Fprintf(out, "As an administrator, enroll the first one:\r\n"+
		"  %s projects create web\r\n"+
		"  %s projects grant web GROUP\r\n"+
		"  %s tokens create web\r\n"+
		"then run rampart-agent on the server with that token (docs/agent.md).\r\n", admin, admin, admin)
}

// adminCommand is the ssh command that opens the admin shell on the node
// the greeting's -J line names ("host" or "host:port").
func adminCommand(jumpHost string) string {
	if host, port, err := net.SplitHostPort(jumpHost); err == nil {
		return fmt.Sprintf("ssh -p %s admin@%s", port, host)
	}
	return "ssh admin@" + jumpHost
}
