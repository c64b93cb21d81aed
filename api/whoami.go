package api

// Whoami is what `ssh bastion whoami --json` prints, one line: who the
// person is, their live bindings and the servers they may reach. The front
// door writes it; the CLI (`rampart servers`, `rampart status`) reads it.
type Whoami struct {
	Login          string   `json:"login"`
	Email          string   `json:"email,omitempty"`
	UnixName       string   `json:"unix_name"`
	UID            uint32   `json:"uid"`
	Groups         []string `json:"groups"`
	Admin          bool     `json:"admin"`
	BindingExpires string   `json:"binding_expires,omitempty"`
	// Bindings are the person's live bindings (keys that sign in without
	// the browser), oldest first.
	Bindings []BindingView `json:"bindings"`
	Servers  []Destination `json:"servers"`
}

// Destination is a server the person may reach, with the exact command.
type Destination struct {
	Name    string `json:"name"`
	Project string `json:"project"`
	Command string `json:"command"`
	// Labels are the server's labels (role=web, env=prod).
	Labels map[string]string `json:"labels,omitempty"`
	// Logins are the project's shared logins the person may use there
	// besides their own unix name (Command uses their own).
	Logins []string `json:"logins,omitempty"`
}

// BindingView is one of a person's live bindings, as `bindings --json` and
// whoami print it.
type BindingView struct {
	// Index numbers the bindings oldest first, from 1.
	Index       int    `json:"index"`
	Fingerprint string `json:"fingerprint"`
	// Source is the address the key was bound from (host only).
	Source  string `json:"source"`
	BoundAt string `json:"bound_at"`
	Age     string `json:"age"`
	Expires string `json:"expires"`
	// Current marks the key of the connection showing it.
	Current bool `json:"current,omitempty"`
}
