// Package backup is the cluster backup file: one header line, the raft
// snapshot of the replicated state, and one trailer line with the SHA-256 of
// both, so that a backup is checked whole before anything is restored from it.
//
// The file is JSON lines from end to end:
//
//	{"rampart_backup":1,"cluster_id":"c-…","node":"n2","index":1234,"term":3,"created_at":"…","version":"…","snapshot_bytes":56789}
//	…snapshot_bytes bytes: the raft snapshot (raftstore's format, itself JSON lines)…
//	{"sha256":"<hex SHA-256 of every byte before this line>"}
//
// The snapshot holds CA private keys only sealed under the key-encryption
// key, which never enters raft and so never enters a backup.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Format is the layout this build writes and the newest it reads.
const Format = 1

// maxLine bounds the header and trailer lines a reader accepts.
const maxLine = 64 << 10

var (
	// ErrNotBackup: the file does not start with a backup header.
	ErrNotBackup = errors.New("not a rampart backup")
	// ErrTruncated: the file ends before its trailer (an interrupted copy).
	ErrTruncated = errors.New("the backup is truncated")
	// ErrChecksum: the bytes do not hash to the trailer's SHA-256.
	ErrChecksum = errors.New("the backup's SHA-256 does not match its content")
	// ErrFutureFormat: a backup written by a newer release.
	ErrFutureFormat = errors.New("the backup was written by a newer release")
)

// Header describes a backup; it is the file's first line.
type Header struct {
	Format    int    `json:"rampart_backup"`
	ClusterID string `json:"cluster_id"`
	// Node is the node whose replica the snapshot was taken on.
	Node string `json:"node"`
	// Index and Term are the raft index and term of the snapshot: it holds
	// every change committed up to Index.
	Index     uint64    `json:"index"`
	Term      uint64    `json:"term"`
	CreatedAt time.Time `json:"created_at"`
	// Version is the release of the node that wrote the backup.
	Version string `json:"version"`
	// Size is the length of the snapshot in bytes.
	Size int64 `json:"snapshot_bytes"`
}

type trailer struct {
	SHA256 string `json:"sha256"`
}

// Write writes a backup of snapshot (exactly hdr.Size bytes) to w and
// returns its hex SHA-256. hdr.Format is set to Format.
func Write(w io.Writer, hdr Header, snapshot io.Reader) (string, error) {
	hdr.Format = Format
	line, err := json.Marshal(hdr)
	if err != nil {
		return "", fmt.Errorf("backup header: %w", err)
	}
	h := sha256.New()
	out := io.MultiWriter(w, h)
	if _, err := out.Write(append(line, '\n')); err != nil {
		return "", fmt.Errorf("write backup header: %w", err)
	}
	n, err := io.Copy(out, io.LimitReader(snapshot, hdr.Size))
	if err != nil {
		return "", fmt.Errorf("write backup snapshot: %w", err)
	}
	if n != hdr.Size {
		return "", fmt.Errorf("write backup snapshot: %d bytes, the snapshot is %d", n, hdr.Size)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	tl, _ := json.Marshal(trailer{SHA256: sum})
	if _, err := w.Write(append(tl, '\n')); err != nil {
		return "", fmt.Errorf("write backup trailer: %w", err)
	}
	return sum, nil
}

// Sum returns the SHA-256 Write would write for hdr and snapshot.
func Sum(hdr Header, snapshot io.Reader) (string, error) {
	return Write(io.Discard, hdr, snapshot)
}

// Verify reads a whole backup and checks its shape and its SHA-256. It
// returns the header, the checksum and the length of the header line (where
// the snapshot starts).
func Verify(r io.Reader) (*Header, string, int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	line, err := readLine(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, "", 0, fmt.Errorf("%w: the file is empty or has no header line", ErrNotBackup)
		}
		return nil, "", 0, err
	}
	var hdr Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil || hdr.Format == 0 {
		return nil, "", 0, fmt.Errorf("%w: the first line is not a backup header", ErrNotBackup)
	}
	if hdr.Format > Format {
		return nil, "", 0, fmt.Errorf("%w (format %d; this release reads up to %d)", ErrFutureFormat, hdr.Format, Format)
	}
	if hdr.Size < 0 || hdr.Index == 0 {
		return nil, "", 0, fmt.Errorf("%w: the header gives no raft index or a negative size", ErrNotBackup)
	}
	h := sha256.New()
	h.Write(line)
	n, err := io.CopyN(h, br, hdr.Size)
	if errors.Is(err, io.EOF) {
		return nil, "", 0, fmt.Errorf("%w: the snapshot has %d of its %d bytes", ErrTruncated, n, hdr.Size)
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("read the backup: %w", err)
	}
	tl, err := readLine(br)
	if errors.Is(err, io.EOF) {
		return nil, "", 0, fmt.Errorf("%w: it ends without its checksum line", ErrTruncated)
	}
	if err != nil {
		return nil, "", 0, err
	}
	var t trailer
	if err := json.Unmarshal(tl, &t); err != nil || t.SHA256 == "" {
		return nil, "", 0, fmt.Errorf("%w: the line after the snapshot is not the checksum line", ErrChecksum)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, "", 0, fmt.Errorf("%w: there is data after the checksum line", ErrChecksum)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != t.SHA256 {
		return nil, "", 0, fmt.Errorf("%w (recorded %s, computed %s)", ErrChecksum, t.SHA256, sum)
	}
	return &hdr, sum, int64(len(line)), nil
}

// readLine returns the next line with its newline, refusing one longer than
// maxLine; io.EOF when there is none (a last line without newline is
// incomplete).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("%w: a line of more than %d bytes where a header or checksum line belongs", ErrNotBackup, maxLine)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		default:
			return nil, fmt.Errorf("read the backup: %w", err)
		}
	}
}

// File is a verified backup file open for restoring.
type File struct {
	Header Header
	// SHA256 is the checksum the file carries, verified.
	SHA256 string
	f      *os.File
	start  int64
}

// Open verifies the backup at path whole (its shape and its SHA-256), then
// returns it open at its snapshot.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hdr, sum, start, err := Verify(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{Header: *hdr, SHA256: sum, f: f, start: start}, nil
}

// Snapshot returns a reader of the snapshot the backup holds.
func (b *File) Snapshot() (io.Reader, error) {
	if _, err := b.f.Seek(b.start, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read the backup: %w", err)
	}
	return io.LimitReader(bufio.NewReaderSize(b.f, 64<<10), b.Header.Size), nil
}

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }
