package sshsetup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// State is what a removal needs to give the person's files back as they
// were: for each file setup added a block to, whether it existed and the
// newline added before the block.
type State struct {
	Files map[string]FileState `json:"files"`
}

// FileState is one file's part of State.
type FileState struct {
	Existed bool   `json:"existed"`
	Sep     string `json:"sep,omitempty"`
}

// LoadState reads the state file; a missing one is an empty State.
func LoadState(p Paths) (State, error) {
	st := State{Files: map[string]FileState{}}
	b, ok, err := readFile(p.State)
	if err != nil || !ok {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", p.State, err)
	}
	if st.Files == nil {
		st.Files = map[string]FileState{}
	}
	return st, nil
}

// SaveState writes the state file (mode 0600).
func SaveState(p Paths, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return Apply([]Change{{Path: p.State, New: append(b, '\n'), Mode: 0o600}})
}

// Plan returns the changes that bring the files to d, in the order to make
// them (the included file before the line that includes it), and the state
// to save before making them. No change at all means the files are as d
// wants them.
// A Desired that Check refuses plans nothing.
func Plan(p Paths, d Desired) ([]Change, State, error) {
	if err := d.Check(); err != nil {
		return nil, State{}, err
	}
	st, err := LoadState(p)
	if err != nil {
		return nil, st, err
	}
	var changes []Change
	inc, incExists, err := readFile(p.Included)
	if err != nil {
		return nil, st, err
	}
	if want := []byte(d.Included()); !incExists || !bytes.Equal(inc, want) {
		changes = append(changes, Change{Path: p.Included, Old: inc, New: want, Existed: incExists, Mode: 0o600})
	}
	for _, f := range []struct {
		path, block string
		top         bool
	}{{p.KnownHosts, d.KnownHostsBlock(), false}, {p.SSHConfig, IncludeBlock(p.Included), true}} {
		old, existed, err := readFile(f.path)
		if err != nil {
			return nil, st, err
		}
		_, _, found, err := findBlock(old)
		if err != nil {
			return nil, st, fmt.Errorf("%s: %w; take out the lines from %q to %q, then run rampart setup again", f.path, err, beginMark, endMark)
		}
		out, sep, err := withBlock(old, f.block, f.top)
		if err != nil {
			return nil, st, err
		}
		if !found {
			st.Files[f.path] = FileState{Existed: existed, Sep: sep}
		}
		if !bytes.Equal(old, out) || !existed {
			changes = append(changes, Change{Path: f.path, Old: old, New: out, Existed: existed, Mode: 0o600, InBlock: found})
		}
	}
	return changes, st, nil
}

// PlanRemove returns the changes that take setup's blocks out of the
// person's files (deleting a file setup created, once nothing else is in
// it) and delete the included file.
func PlanRemove(p Paths) ([]Change, error) {
	st, err := LoadState(p)
	if err != nil {
		return nil, err
	}
	var changes []Change
	for _, path := range []string{p.SSHConfig, p.KnownHosts} {
		old, existed, err := readFile(path)
		if err != nil {
			return nil, err
		}
		if !existed {
			continue
		}
		fs, known := st.Files[path]
		out, err := withoutBlock(old, fs.Sep)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; take out the lines from %q to %q by hand", path, err, beginMark, endMark)
		}
		switch {
		case known && !fs.Existed && len(out) == 0:
			changes = append(changes, Change{Path: path, Old: old, Existed: true, Delete: true})
		case !bytes.Equal(old, out):
			changes = append(changes, Change{Path: path, Old: old, New: out, Existed: true})
		}
	}
	if inc, ok, err := readFile(p.Included); err != nil {
		return nil, err
	} else if ok {
		changes = append(changes, Change{Path: p.Included, Old: inc, Existed: true, Delete: true})
	}
	return changes, nil
}

// RemoveState deletes the state file once the blocks are out.
func RemoveState(p Paths) error {
	if err := os.Remove(p.State); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p.State, err)
	}
	return nil
}
