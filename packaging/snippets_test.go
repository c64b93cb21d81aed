package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The cloud-init, Ansible and Terraform snippets install the package and
// run install.sh; each is checked by its tool's own checker (Terraform,
// which Debian does not package, by HCL's parser), and each checker is shown
// to refuse a broken copy, so that a pass means something.

func TestCloudInitSnippet(t *testing.T) {
	need(t, map[string]string{"cloud-init": "cloud-init"})
	snippet := filepath.Join(root(t), "scripts/cloud-init/rampart-agent.yaml")
	out := run(t, "", nil, "cloud-init", "schema", "--config-file", snippet)
	if !strings.Contains(out, "Valid cloud-config") {
		t.Fatalf("cloud-init schema: %s", out)
	}
	body := read(t, snippet)
	for _, want := range []string{"sha256sum -c", "apt-get install -y \"$pkg\"", "dnf install -y \"$pkg\"", "/install.sh", "--token-file /root/rampart-enrollment.token"} {
		if !strings.Contains(body, want) {
			t.Errorf("the cloud-config lacks %q", want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	write(t, bad, strings.Replace(body, "\nruncmd:\n", "\nruncmd: 5\nrun_cmd:\n", 1))
	if out, err := try("", nil, "cloud-init", "schema", "--config-file", bad); err == nil {
		t.Fatalf("cloud-init schema accepted a broken copy:\n%s", out)
	}
}

func TestAnsibleSnippet(t *testing.T) {
	need(t, map[string]string{"ansible-playbook": "ansible-core"})
	playbook := filepath.Join(root(t), "scripts/ansible/rampart-agent.yml")
	env := []string{"ANSIBLE_LOCAL_TEMP=" + t.TempDir(), "ANSIBLE_HOME=" + t.TempDir()}
	run(t, "", env, "ansible-playbook", "--syntax-check", "-i", "localhost,", playbook)
	body := read(t, playbook)
	for _, want := range []string{"ansible.builtin.apt:", "ansible.builtin.dnf:", "/install.sh", "no_log: true"} {
		if !strings.Contains(body, want) {
			t.Errorf("the playbook lacks %q", want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	write(t, bad, strings.Replace(body, "ansible.builtin.apt:", "ansible.builtin.aptt:", 1))
	if out, err := try("", env, "ansible-playbook", "--syntax-check", "-i", "localhost,", bad); err == nil {
		t.Fatalf("ansible-playbook --syntax-check accepted a broken copy:\n%s", out)
	}
}

func TestTerraformSnippet(t *testing.T) {
	path := filepath.Join(root(t), "scripts/terraform/main.tf")
	body := read(t, path)
	f, diags := hclsyntax.ParseConfig([]byte(body), path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", path, diags.Error())
	}
	vars := map[string]bool{}
	content, _, diags := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}}, {Type: "locals"}, {Type: "resource", LabelNames: []string{"type", "name"}},
	}})
	if diags.HasErrors() {
		t.Fatalf("%s: %s", path, diags.Error())
	}
	var userData hcl.Expression
	var locals hcl.Attributes
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			vars[b.Labels[0]] = true
		case "locals":
			attrs, diags := b.Body.JustAttributes()
			if diags.HasErrors() {
				t.Fatalf("locals: %s", diags.Error())
			}
			if a, ok := attrs["rampart_user_data"]; ok {
				userData = a.Expr
			}
			locals = attrs
		}
	}
	for _, v := range []string{"rampart_api", "rampart_package_url", "rampart_package_sha256", "rampart_ca_pem", "rampart_enrollment_token"} {
		if !vars[v] {
			t.Errorf("no variable %q", v)
		}
	}
	if userData == nil {
		t.Fatal("no local rampart_user_data")
	}
	// Every variable the user data refers to, itself or through a local,
	// is declared.
	used := map[string]bool{}
	traversals := userData.Variables()
	for _, tr := range userData.Variables() {
		if tr.RootName() == "local" && len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok && locals[a.Name] != nil {
				traversals = append(traversals, locals[a.Name].Expr.Variables()...)
			}
		}
	}
	for _, tr := range traversals {
		if tr.RootName() == "var" && len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				used[a.Name] = true
				if !vars[a.Name] {
					t.Errorf("user data uses var.%s, which is not declared", a.Name)
				}
			}
		}
	}
	for _, v := range []string{"rampart_package_url", "rampart_package_sha256", "rampart_api"} {
		if !used[v] {
			t.Errorf("the user data does not use var.%s", v)
		}
	}
	if _, diags := hclsyntax.ParseConfig([]byte(strings.Replace(body, "locals {", "locals {{", 1)), "bad.tf", hcl.InitialPos); !diags.HasErrors() {
		t.Fatal("the HCL parser accepted a broken copy")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
