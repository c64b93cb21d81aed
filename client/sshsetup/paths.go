package sshsetup

import "path/filepath"

// Paths are the files setup reads and writes, under one home directory.
type Paths struct {
	// SSHConfig and KnownHosts are the person's own files, edited between
	// markers only.
	SSHConfig  string
	KnownHosts string
	// Dir is rampart's own directory (~/.config/rampart); Included is the
	// ssh_config file there that SSHConfig includes, State what a removal
	// needs to restore the person's files.
	Dir      string
	Included string
	State    string
}

// PathsFor returns the paths under home.
func PathsFor(home string) Paths {
	dir := filepath.Join(home, ".config", "rampart")
	return Paths{
		SSHConfig:  filepath.Join(home, ".ssh", "config"),
		KnownHosts: filepath.Join(home, ".ssh", "known_hosts"),
		Dir:        dir,
		Included:   filepath.Join(dir, "ssh_config"),
		State:      filepath.Join(dir, "setup.json"),
	}
}
