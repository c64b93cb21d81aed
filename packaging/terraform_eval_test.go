package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// tfFuncs are the Terraform functions main.tf calls, as Terraform defines
// them (yamlencode as JSON, which YAML reads the same).
var tfFuncs = map[string]function.Function{
	"can": tryfunc.CanFunc, "regex": stdlib.RegexFunc, "replace": stdlib.ReplaceFunc, "join": stdlib.JoinFunc,
	"trimspace": stdlib.TrimSpaceFunc,
	"basename": function.New(&function.Spec{Params: []function.Parameter{{Name: "path", Type: cty.String}}, Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(path.Base(args[0].AsString())), nil
		}}),
	"yamlencode": function.New(&function.Spec{Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}}, Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := ctyjson.Marshal(args[0], args[0].Type())
			return cty.StringVal(string(b)), err
		}}),
}

// terraformModule is main.tf's variable validations and locals.
type terraformModule struct {
	conditions map[string]hcl.Expression // by variable
	locals     map[string]hcl.Expression
}

func parseTerraform(t *testing.T) terraformModule {
	t.Helper()
	p := filepath.Join(root(t), "scripts/terraform/main.tf")
	f, diags := hclsyntax.ParseConfig([]byte(read(t, p)), p, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	m := terraformModule{conditions: map[string]hcl.Expression{}, locals: map[string]hcl.Expression{}}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		switch b.Type {
		case "variable":
			for _, v := range b.Body.Blocks {
				if v.Type == "validation" {
					m.conditions[b.Labels[0]] = v.Body.Attributes["condition"].Expr
				}
			}
		case "locals":
			for name, a := range b.Body.Attributes {
				m.locals[name] = a.Expr
			}
		}
	}
	return m
}

func (m terraformModule) eval(t *testing.T, e hcl.Expression, vars map[string]string, locals map[string]cty.Value) cty.Value {
	t.Helper()
	vv := map[string]cty.Value{}
	for k, v := range vars {
		vv[k] = cty.StringVal(v)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vv)}, Functions: tfFuncs}
	if len(locals) > 0 {
		ctx.Variables["local"] = cty.ObjectVal(locals)
	}
	v, diags := e.Value(ctx)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return v
}

// TestTerraformRefusesHostileValues: the validations admit real addresses
// and package URLs and refuse values that could break out of the shell
// script the user data runs.
func TestTerraformRefusesHostileValues(t *testing.T) {
	m := parseTerraform(t)
	for _, tc := range []struct {
		name, variable, value string
		ok                    bool
	}{
		{"ok/url", "rampart_package_url", "https://artifacts.example.com/rampart/rampart-agent_0.1.0_amd64.deb", true},
		{"ok/url-port-rpm", "rampart_package_url", "https://10.0.0.5:8443/p/rampart-agent-0.1.0-1.x86_64.rpm", true},
		{"ok/url-plus-tilde", "rampart_package_url", "https://a.example/~ops/rampart-agent_0.1.0+git1_arm64.deb", true},
		{"fail/url-quote", "rampart_package_url", "https://a.example/x';touch /tmp/pwned;'.deb", false},
		{"fail/url-command-substitution", "rampart_package_url", "https://a.example/$(touch /tmp/pwned).deb", false},
		{"fail/url-backtick", "rampart_package_url", "https://a.example/`id`.deb", false},
		{"fail/url-space", "rampart_package_url", "https://a.example/a b.deb", false},
		{"fail/url-newline", "rampart_package_url", "https://a.example/a\nreboot\n.deb", false},
		{"fail/url-http", "rampart_package_url", "http://a.example/a.deb", false},
		{"ok/api-ipv4", "rampart_api", "10.0.0.11:8443", true},
		{"ok/api-name", "rampart_api", "bastion.example.com:8443", true},
		{"ok/api-ipv6", "rampart_api", "[2001:db8::1]:8443", true},
		{"fail/api-path", "rampart_api", "evil.example/x#:8443", false},
		{"fail/api-command", "rampart_api", "$(reboot):8443", false},
		{"fail/api-no-port", "rampart_api", "10.0.0.11", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cond, ok := m.conditions[tc.variable]
			if !ok {
				t.Fatalf("var.%s has no validation", tc.variable)
			}
			if got := m.eval(t, cond, map[string]string{tc.variable: tc.value}, nil); got.True() != tc.ok {
				t.Fatalf("validation of %q = %v, want %v", tc.value, got.True(), tc.ok)
			}
		})
	}
}

// TestTerraformQuotesForTheShell: even a value past the validations (their
// rules are a second line) reaches the user data's script as one word:
// each command that carries it, run by bash with its command replaced by
// printf, prints the value unchanged and runs nothing.
func TestTerraformQuotesForTheShell(t *testing.T) {
	need(t, map[string]string{"bash": "bash"})
	m := parseTerraform(t)
	dir := t.TempDir()
	mark := filepath.Join(dir, "pwned")
	hostile := "https://a.example/x';touch " + mark + ";'$(touch " + mark + ")`touch " + mark + "`.deb"
	vars := map[string]string{"rampart_package_url": hostile, "rampart_package_sha256": strings.Repeat("a", 64),
		"rampart_api": "10.0.0.11:8443'$(touch " + mark + ")", "rampart_ca_pem": "pem", "rampart_enrollment_token": "rpt1_x"}
	sh := m.eval(t, m.locals["rampart_sh"], vars, nil)
	ud := m.eval(t, m.locals["rampart_user_data"], vars, map[string]cty.Value{"rampart_sh": sh}).AsString()
	var doc struct{ Runcmd [][]string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(ud, "#cloud-config\n")), &doc); err != nil || len(doc.Runcmd) != 1 || len(doc.Runcmd[0]) != 3 {
		t.Fatalf("user data: %v\n%s", err, ud)
	}
	script := doc.Runcmd[0][2]
	want := map[string]string{"pkg=": "/root/" + path.Base(hostile), "curl -fsSL --retry 5 -o": hostile,
		"curl -fsSL --retry 5 --cacert": "https://" + vars["rampart_api"] + "/install.sh"}
	seen := 0
	for _, line := range strings.Split(script, "\n") {
		for prefix, value := range want {
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			seen++
			// The command's words, one per line; the value is one of them.
			cmd := "pkg=/root/x; printf '%s\\n'" + strings.TrimPrefix(line, "curl")
			if prefix == "pkg=" {
				cmd = line + `; printf '%s\n' "$pkg"`
			}
			cmd, _, _ = strings.Cut(cmd, " | ")
			out, err := exec.Command("bash", "-c", cmd).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			if !strings.Contains("\n"+string(out), "\n"+value+"\n") {
				t.Errorf("%q is not one word in %q:\n%s", value, line, out)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("found %d of the %d commands in:\n%s", seen, len(want), script)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the hostile value ran a command")
	}
}
