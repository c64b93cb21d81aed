package control

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/backup"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// fakeSnapshots hands out one snapshot: the harness's state at its index.
type fakeSnapshots struct {
	t    *testing.T
	data []byte
}

func (f *fakeSnapshots) TakeBackup(context.Context) (*raftstore.Backup, error) {
	return &raftstore.Backup{Node: "n2", Index: 77, Term: 4, Size: int64(len(f.data)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(f.data)), nil
	}}, nil
}

// watchedWriter fails the test if anything is written before ok is set.
type watchedWriter struct {
	t   *testing.T
	ok  bool
	buf bytes.Buffer
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	if !w.ok {
		w.t.Error("backup bytes written before begin was called")
	}
	return w.buf.Write(p)
}

// testBackupKey stands for the node's ca.KEK.BackupKey.
var testBackupKey = bytes.Repeat([]byte{0x42}, 32)

func newBackupHarness(t *testing.T) (*harness, *fakeSnapshots) {
	h := newHarness(t)
	snaps := &fakeSnapshots{t: t, data: []byte(`{"rampart_snapshot":1,"tables":[]}` + "\n" + `{"end":true}` + "\n")}
	h.svc = New(Deps{Store: h.store, Auditor: h.audit, Members: h.store, Cluster: fixedCluster{}, Snapshots: snaps,
		BackupKey: testBackupKey, Now: h.svc.now})
	return h, snaps
}

func TestBackup(t *testing.T) {
	h, snaps := newBackupHarness(t)
	w := &watchedWriter{t: t}
	var begun *BackupInfo
	info, err := h.svc.Backup(context.Background(), testActor, w, func(b BackupInfo) {
		// Audited before the first byte leaves.
		if evs := h.audit.all(); len(evs) != 1 || evs[0].Type != EventClusterBackup {
			t.Errorf("audit events when the backup begins: %+v", evs)
		}
		begun = &b
		w.ok = true
	})
	if err != nil {
		t.Fatal(err)
	}
	if begun == nil || begun.SHA256 != info.SHA256 {
		t.Fatalf("begin saw %+v, Backup returned %+v", begun, info)
	}
	hdr, sum, _, err := backup.Verify(bytes.NewReader(w.buf.Bytes()), testBackupKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := backup.Verify(bytes.NewReader(w.buf.Bytes()), bytes.Repeat([]byte{0x43}, 32)); !errors.Is(err, backup.ErrUnauthentic) {
		t.Fatalf("the backup verifies under a key other than the node's (%v)", err)
	}
	if sum != info.SHA256 || hdr.Index != 77 || hdr.Term != 4 || hdr.Node != "n2" || hdr.Size != int64(len(snaps.data)) {
		t.Fatalf("backup header %+v sum %s; info %+v", hdr, sum, info)
	}
	if !bytes.Contains(w.buf.Bytes(), snaps.data) {
		t.Fatal("the backup does not hold the snapshot")
	}
	ev := h.audit.all()[0]
	if ev.Actor != "alice" || ev.Fields["index"] != "77" || ev.Fields["sha256"] != info.SHA256 || ev.Fields["source"] != "198.51.100.7:50022" {
		t.Fatalf("audit event %+v", ev)
	}
}

func TestBackupRefused(t *testing.T) {
	t.Run("fail/audit-refused-nothing-written", func(t *testing.T) {
		h, _ := newBackupHarness(t)
		h.audit.fail = errRefused
		var out bytes.Buffer
		_, err := h.svc.Backup(context.Background(), testActor, &out, func(BackupInfo) { t.Error("begin called for an unaudited backup") })
		if !errors.Is(err, errRefused) || out.Len() != 0 {
			t.Fatalf("Backup = %v with %d bytes written; want the audit's refusal and nothing", err, out.Len())
		}
	})
	t.Run("fail/no-snapshots", func(t *testing.T) {
		h := newHarness(t)
		var out bytes.Buffer
		_, err := h.svc.Backup(context.Background(), testActor, &out, nil)
		if st, _ := fault.StatusOf(err); st != http.StatusServiceUnavailable || out.Len() != 0 || !strings.Contains(err.Error(), "cannot take backups") {
			t.Fatalf("Backup without snapshots = %v (status %d)", err, st)
		}
	})
	t.Run("fail/no-backup-key", func(t *testing.T) {
		h := newHarness(t)
		h.svc = New(Deps{Store: h.store, Auditor: h.audit, Members: h.store, Snapshots: &fakeSnapshots{t: t}, Now: h.svc.now})
		var out bytes.Buffer
		_, err := h.svc.Backup(context.Background(), testActor, &out, nil)
		if st, _ := fault.StatusOf(err); st != http.StatusServiceUnavailable || out.Len() != 0 || len(h.audit.all()) != 0 {
			t.Fatalf("Backup without a backup key = %v (status %d, %d bytes, audit %+v)", err, st, out.Len(), h.audit.all())
		}
	})
}
