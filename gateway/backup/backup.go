// Package backup is the cluster backup file: one header line, the raft
// snapshot of the replicated state, and one trailer line with the SHA-256 and
// the HMAC-SHA256 of both, so that a backup is checked whole, and
// authenticated, before anything is restored from it.
//
// The file is JSON lines from end to end:
//
//	{"rampart_backup":1,"cluster_id":"c-…","node":"n2","index":1234,"term":3,"created_at":"…","version":"…","snapshot_bytes":56789}
//	…snapshot_bytes bytes: the raft snapshot (raftstore's format, itself JSON lines)…
//	{"sha256":"<hex SHA-256 of every byte before this line>","hmac_sha256":"<hex HMAC-SHA256 of the same bytes>"}
//
// The SHA-256 is for operators to compare copies; anyone can recompute it
// after changing the file. The HMAC is keyed with the cluster's backup key
// (ca.KEK.BackupKey, derived from the key-encryption key), which only the
// cluster's nodes hold: a file changed by whoever can write backup storage,
// or written under another KEK, does not verify. The snapshot holds CA
// private keys only sealed under the key-encryption key; neither the KEK nor
// the backup key enters raft, and so neither enters a backup.
package backup

import (
	"bufio"
	"bytes"
	"crypto/hmac"
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
	// ErrUnauthentic: the file's HMAC does not verify with the key given:
	// either the key is not the one of the cluster that wrote the backup (a
	// restore run with another KEK) or the file was changed after it was
	// written, its SHA-256 recomputed. Nothing tells the two apart.
	ErrUnauthentic = errors.New("the backup's HMAC does not verify: either the key-encryption key is not the one of the cluster that took the backup, or the file was altered after it was written")
	// errNoKey: a caller gave no backup key.
	errNoKey = errors.New("no backup key (ca.KEK.BackupKey) to authenticate the backup with")
)

// minKeySize is the shortest backup key Write and Verify accept.
const minKeySize = 32

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
	HMAC   string `json:"hmac_sha256"`
}

// Write writes a backup of snapshot (exactly hdr.Size bytes) to w,
// authenticated with key (ca.KEK.BackupKey), and returns its hex SHA-256.
// hdr.Format is set to Format.
func Write(w io.Writer, hdr Header, key []byte, snapshot io.Reader) (string, error) {
	if len(key) < minKeySize {
		return "", errNoKey
	}
	hdr.Format = Format
	line, err := json.Marshal(hdr)
	if err != nil {
		return "", fmt.Errorf("backup header: %w", err)
	}
	h, mac := sha256.New(), hmac.New(sha256.New, key)
	out := io.MultiWriter(w, h, mac)
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
	tl, _ := json.Marshal(trailer{SHA256: sum, HMAC: hex.EncodeToString(mac.Sum(nil))})
	if _, err := w.Write(append(tl, '\n')); err != nil {
		return "", fmt.Errorf("write backup trailer: %w", err)
	}
	return sum, nil
}

// Sum returns the SHA-256 Write would write for hdr and snapshot.
func Sum(hdr Header, key []byte, snapshot io.Reader) (string, error) {
	return Write(io.Discard, hdr, key, snapshot)
}

// Verify reads a whole backup and checks its shape, its SHA-256 and its
// HMAC under key (ca.KEK.BackupKey): ErrUnauthentic when the HMAC does not
// verify. It returns the header, the checksum and the length of the header
// line (where the snapshot starts).
func Verify(r io.Reader, key []byte) (*Header, string, int64, error) {
	if len(key) < minKeySize {
		return nil, "", 0, errNoKey
	}
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
	h, mac := sha256.New(), hmac.New(sha256.New, key)
	h.Write(line)
	mac.Write(line)
	n, err := io.CopyN(io.MultiWriter(h, mac), br, hdr.Size)
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
	recorded, err := hex.DecodeString(t.HMAC)
	if err != nil || t.HMAC == "" {
		return nil, "", 0, fmt.Errorf("%w (the checksum line carries no HMAC)", ErrUnauthentic)
	}
	if !hmac.Equal(recorded, mac.Sum(nil)) {
		return nil, "", 0, ErrUnauthentic
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
	// SHA256 is the checksum the file carries, verified (and the file
	// authenticated).
	SHA256 string
	f      *os.File
	start  int64
}

// Open verifies the backup at path whole (its shape, its SHA-256 and its
// HMAC under key), then returns it open at its snapshot.
func Open(path string, key []byte) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hdr, sum, start, err := Verify(f, key)
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
