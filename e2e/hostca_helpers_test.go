package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
)

// hostCALines is known_hosts text trusting the cluster's node host CA (the
// bastion's front door) and its target host CA (targets and the jump's
// per-target servers), each for any name: what tests that are not about the
// split between the two keep. `ca known-hosts` prints the lines an operator
// uses, each CA for its own names (TestHostCAVouchesOnlyForNodes).
func hostCALines(t testing.TB, c *APIClient) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{"/v1/ca/node-host", "/v1/ca/host"} {
		var k api.CAKeys
		do(t, c, http.MethodGet, path, nil, &k)
		if len(k.Keys) != 1 {
			t.Fatalf("%s keys = %v, want one", path, k.Keys)
		}
		fmt.Fprintf(&b, "@cert-authority * %s\n", k.Keys[0])
	}
	return b.String()
}
