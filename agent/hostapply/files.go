package hostapply

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so that no reader (sudo, sshd) sees half a file. The
// temporary name starts with '.' and holds one: sudo's includedir skips such
// names, so even a leftover is never read as sudoers.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := createTemp(path, data, mode)
	if err != nil {
		return err
	}
	return commitTemp(tmp, path)
}

// createTemp writes data with mode to a synced temporary file beside path
// and returns its name, for a check before commitTemp.
func createTemp(path string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if os.Geteuid() == 0 {
		// sudo and sshd want root's files; a root agent's files are root's
		// already unless the directory is setgid.
		if err := f.Chown(0, 0); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// commitTemp renames tmp over path and syncs the directory.
func commitTemp(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// fileState is a file's content and mode, or its absence.
type fileState struct {
	exists bool
	data   []byte
	mode   fs.FileMode
}

// readFileState reads a regular file; a missing one is !exists. Anything
// else at path (a directory, a symlink) is an error: the agent does not
// write through links.
func readFileState(path string) (fileState, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileState{}, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fileState{}, err
	}
	return fileState{exists: true, data: b, mode: fi.Mode().Perm()}, nil
}

// same reports whether the file already is want (nil want: absent).
func (f fileState) same(want []byte, mode fs.FileMode) bool {
	if want == nil {
		return !f.exists
	}
	return f.exists && f.mode == mode && bytes.Equal(f.data, want)
}

// fileTxn changes several files and can put them all back.
type fileTxn struct {
	done []txnEntry
}

type txnEntry struct {
	path string
	old  fileState
}

// set makes path hold data with mode, or removes it when data is nil.
func (t *fileTxn) set(path string, data []byte, mode fs.FileMode) error {
	old, err := readFileState(path)
	if err != nil {
		return err
	}
	if old.same(data, mode) {
		return nil
	}
	if data == nil {
		err = os.Remove(path)
	} else {
		err = writeFileAtomic(path, data, mode)
	}
	if err != nil {
		return err
	}
	t.done = append(t.done, txnEntry{path: path, old: old})
	return nil
}

// changed reports whether set changed anything.
func (t *fileTxn) changed() bool { return len(t.done) > 0 }

// rollback puts every changed file back, last first.
func (t *fileTxn) rollback() error {
	var errs []error
	for i := len(t.done) - 1; i >= 0; i-- {
		e := t.done[i]
		var err error
		if e.old.exists {
			err = writeFileAtomic(e.path, e.old.data, e.old.mode)
		} else if err = os.Remove(e.path); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", e.path, err))
		}
	}
	t.done = nil
	return errors.Join(errs...)
}

// ensureDir makes a real directory (not a symlink) at path with mode.
func ensureDir(path string, mode fs.FileMode) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(path, mode); err != nil {
			return err
		}
		return os.Chmod(path, mode)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", path, fi.Mode().Type())
	}
	return nil
}
