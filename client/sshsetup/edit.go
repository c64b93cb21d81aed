package sshsetup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	udiff "github.com/aymanbagabas/go-udiff"
)

// ErrBlockEdited: a marker of setup's block is missing or doubled, so the
// block cannot be told apart from the person's own lines.
var ErrBlockEdited = errors.New("the rampart block was edited by hand")

// Change is one file's new content, or its removal.
type Change struct {
	Path    string
	Old     []byte
	New     []byte
	Existed bool
	// Delete removes the file instead of writing New.
	Delete bool
	// Mode is the mode of a file created (an existing one keeps its own).
	Mode fs.FileMode
	// InBlock marks a change of the person's file that replaces setup's
	// block there and nothing else.
	InBlock bool
}

// Diff is the change as a unified diff, fit for a terminal: control
// characters (an escape sequence could hide or redraw lines) and bidi
// overrides are shown as \x.. and \u.... escapes.
func (c Change) Diff() string {
	oldName, newName := c.Path, c.Path
	if !c.Existed {
		oldName = "/dev/null"
	}
	if c.Delete {
		newName = "/dev/null"
	}
	return printable(udiff.Unified(oldName, newName, string(c.Old), string(c.New)))
}

// printable escapes every control character but newline and tab, and the
// bidi controls, in s.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x100 && unicode.IsControl(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SameChanges reports whether a and b are the same changes to files in the
// same state: a plan made again just before writing equals the one shown,
// unless a file changed in between.
func SameChanges(a, b []Change) bool {
	return slices.EqualFunc(a, b, func(x, y Change) bool {
		return x.Path == y.Path && x.Existed == y.Existed && x.Delete == y.Delete &&
			bytes.Equal(x.Old, y.Old) && bytes.Equal(x.New, y.New)
	})
}

// readFile returns path's content and whether it exists.
func readFile(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	return b, true, nil
}

// findBlock returns the bytes [start, end) of setup's block in content: its
// begin marker line through its end marker line and newline.
func findBlock(content []byte) (start, end int, found bool, err error) {
	s := string(content)
	b, e := lineIndex(s, beginMark), lineIndex(s, endMark)
	switch {
	case b < 0 && e < 0:
		return 0, 0, false, nil
	case b < 0 || e < b || countLines(s, beginMark) > 1 || countLines(s, endMark) > 1:
		return 0, 0, false, ErrBlockEdited
	}
	end = e + len(endMark)
	if nl := strings.IndexByte(s[end:], '\n'); nl >= 0 {
		end += nl + 1
	} else {
		end = len(s)
	}
	return b, end, true, nil
}

// lineIndex is the offset of the first line that starts with prefix, or -1.
func lineIndex(s, prefix string) int {
	if strings.HasPrefix(s, prefix) {
		return 0
	}
	if i := strings.Index(s, "\n"+prefix); i >= 0 {
		return i + 1
	}
	return -1
}

// countLines counts the lines that start with prefix.
func countLines(s, prefix string) int {
	n := strings.Count(s, "\n"+prefix)
	if strings.HasPrefix(s, prefix) {
		n++
	}
	return n
}

// withBlock returns content with its block replaced by block, or block
// added (at the top, or at the end after sep, the newline a file without a
// final one needs). sep reports what was added before a new block.
func withBlock(content []byte, block string, top bool) (out []byte, sep string, err error) {
	start, end, found, err := findBlock(content)
	if err != nil {
		return nil, "", err
	}
	if found {
		return concat(content[:start], []byte(block), content[end:]), "", nil
	}
	if top {
		return concat([]byte(block), content), "", nil
	}
	if len(content) > 0 && content[len(content)-1] != '\n' {
		sep = "\n"
	}
	return concat(content, []byte(sep+block)), sep, nil
}

// withoutBlock returns content with the block taken out, and the newline
// that was added before it when it still ends the file.
func withoutBlock(content []byte, sep string) ([]byte, error) {
	start, end, found, err := findBlock(content)
	if err != nil || !found {
		return content, err
	}
	if end == len(content) && sep != "" && bytes.HasSuffix(content[:start], []byte(sep)) {
		start -= len(sep)
	}
	return concat(content[:start], content[end:]), nil
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Apply makes each change. A file is written through a temporary file in
// its directory and renamed over the real one (its symlink followed, its
// mode kept), so that a crash leaves the old or the new content.
func Apply(changes []Change) error {
	for _, c := range changes {
		if err := apply(c); err != nil {
			return err
		}
	}
	return nil
}

func apply(c Change) error {
	path := c.Path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if c.Delete {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", c.Path, err)
		}
		return nil
	}
	mode := c.Mode
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".rampart-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(c.New); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	return nil
}
