package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ansibleTask is what the test needs of a task of the playbook.
type ansibleTask struct {
	Name   string `yaml:"name"`
	Assert *struct {
		That []string `yaml:"that"`
	} `yaml:"ansible.builtin.assert"`
	Shell string        `yaml:"ansible.builtin.shell"`
	Block []ansibleTask `yaml:"block"`
}

// ansibleExpressions returns the playbook's check of rampart_api and the
// template of its install.sh command.
func ansibleExpressions(t *testing.T) (check, command string) {
	t.Helper()
	var plays []struct {
		Tasks []ansibleTask `yaml:"tasks"`
	}
	if err := yaml.Unmarshal([]byte(read(t, filepath.Join(root(t), "scripts/ansible/rampart-agent.yml"))), &plays); err != nil || len(plays) != 1 {
		t.Fatalf("playbook: %v", err)
	}
	var walk func([]ansibleTask)
	walk = func(tasks []ansibleTask) {
		for _, task := range tasks {
			if task.Assert != nil && len(task.Assert.That) == 1 && strings.Contains(task.Assert.That[0], "rampart_api") {
				check = task.Assert.That[0]
			}
			if strings.Contains(task.Shell, "install.sh") {
				command = task.Shell
			}
			walk(task.Block)
		}
	}
	walk(plays[0].Tasks)
	if check == "" || command == "" {
		t.Fatalf("the playbook has no check of rampart_api (%q) or no install.sh command (%q)", check, command)
	}
	return check, command
}

// TestAnsibleRefusesAndQuotes: with hostile values, Ansible itself (a
// playbook on localhost that evaluates the playbook's own check and
// template) refuses an API address that is not host:port, and renders a
// command in which each value is one shell word that runs nothing.
func TestAnsibleRefusesAndQuotes(t *testing.T) {
	need(t, map[string]string{"ansible-playbook": "ansible-core", "bash": "bash"})
	check, command := ansibleExpressions(t)
	dir := t.TempDir()
	mark := filepath.Join(dir, "pwned")
	extra := []string{"--addr", "10.0.0.5; touch " + mark, "$(touch " + mark + ")", "it's"}
	cases := []struct {
		api string
		ok  bool
	}{
		{"10.0.0.11:8443", true}, {"[2001:db8::1]:8443", true}, {"bastion.example.com:8443", true},
		{"10.0.0.11:8443/x; touch " + mark, false}, {"$(touch " + mark + "):8443", false}, {"evil.example/#:8443", false},
	}
	vars := map[string]any{"rampart_extra_args": extra}
	// Each task writes what it evaluated to a file of its own.
	var tasks []map[string]any
	result := func(name, content string) {
		tasks = append(tasks, map[string]any{"name": name, "ansible.builtin.copy": map[string]any{
			"content": content, "dest": filepath.Join(dir, name+".out"), "mode": "0600"}})
	}
	for i, tc := range cases {
		v := "api" + string(rune('a'+i))
		vars[v] = tc.api
		result("check-"+v, "{{ ("+strings.ReplaceAll(check, "rampart_api", v)+") | string }}")
	}
	vars["rampart_api"] = "10.0.0.11:8443'$(touch " + mark + ")"
	result("command", command)
	play, err := json.Marshal([]map[string]any{{"hosts": "localhost", "gather_facts": false, "connection": "local", "vars": vars, "tasks": tasks}})
	if err != nil {
		t.Fatal(err)
	}
	book := filepath.Join(dir, "eval.yml")
	write(t, book, string(play))
	env := []string{"ANSIBLE_LOCAL_TEMP=" + t.TempDir(), "ANSIBLE_HOME=" + t.TempDir(), "ANSIBLE_LOCALHOST_WARNING=false"}
	run(t, "", env, "ansible-playbook", "-i", "localhost,", book)
	for i, tc := range cases {
		got := strings.TrimSpace(read(t, filepath.Join(dir, "check-api"+string(rune('a'+i))+".out")))
		if want := map[bool]string{true: "True", false: "False"}[tc.ok]; got != want {
			t.Errorf("rampart_api %q: the check says %s, want %s", tc.api, got, want)
		}
	}
	rendered := read(t, filepath.Join(dir, "command.out"))
	// Run it with curl and bash as functions that print their arguments.
	sh := `curl() { printf 'curl:%s\n' "$@" >&2; }; bash() { printf 'bash:%s\n' "$@" >&2; }; ` + rendered
	got, err := exec.Command("bash", "-c", sh).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", rendered, err, got)
	}
	words := "\n" + string(got)
	for _, w := range append([]string{"curl:https://" + vars["rampart_api"].(string) + "/install.sh"}, prefixed("bash:", extra)...) {
		if !strings.Contains(words, "\n"+w+"\n") {
			t.Errorf("%q is not one word of the command %q:\n%s", w, rendered, got)
		}
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("a hostile value ran a command")
	}
}

func prefixed(p string, s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = p + v
	}
	return out
}
