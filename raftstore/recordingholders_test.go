package raftstore

import (
	"errors"
	"strings"
	"testing"
)

func TestRecordingHolders(t *testing.T) {
	f := testFSM(t)
	sum := func(c string) string { return strings.Repeat(c, 64) }
	put := func(node, sha string, partial bool) error {
		return apply(t, f, &RecordingHolderPut{Holder: RecordingHolder{Name: "s1", Session: "s1", Node: node,
			Path: "replicas/2026-11-25/s1.cast", SHA256: sha, Bytes: 10, Partial: partial, At: testNow}}).Err
	}
	holders := func() map[string]*RecordingHolder {
		_, hs, err := f.State().RecordingHoldersOf(nil, "s1")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*RecordingHolder{}
		for _, h := range hs {
			m[h.Node] = h
		}
		return m
	}
	if err := put("n1", sum("a"), false); err != nil {
		t.Fatal(err)
	}
	if err := put("n2", sum("b"), true); err != nil {
		t.Fatal(err)
	}
	t.Run("ok/two-holders", func(t *testing.T) {
		if h := holders(); len(h) != 2 || h["n1"].Partial || !h["n2"].Partial {
			t.Fatalf("holders %+v", h)
		}
	})
	t.Run("ok/complete-replaces-partial", func(t *testing.T) {
		if err := put("n2", sum("a"), false); err != nil {
			t.Fatal(err)
		}
		if h := holders()["n2"]; h.Partial || h.SHA256 != sum("a") {
			t.Fatalf("n2 %+v", h)
		}
	})
	t.Run("ok/partial-never-replaces-complete", func(t *testing.T) {
		if err := put("n2", sum("c"), true); err != nil {
			t.Fatal(err)
		}
		if h := holders()["n2"]; h.Partial || h.SHA256 != sum("a") {
			t.Fatalf("n2 %+v", h)
		}
	})
	t.Run("fail/complete-never-replaced", func(t *testing.T) {
		if err := put("n2", sum("d"), false); !errors.Is(err, ErrConflict) {
			t.Fatalf("err %v, want ErrConflict", err)
		}
		if h := holders()["n2"]; h.Partial || h.SHA256 != sum("a") {
			t.Fatalf("n2 %+v", h)
		}
		if err := put("n2", sum("a"), false); err != nil {
			t.Fatalf("the same complete copy again: %v", err)
		}
	})
	t.Run("fail/bad-path", func(t *testing.T) {
		err := apply(t, f, &RecordingHolderPut{Holder: RecordingHolder{Name: "s1", Session: "s1", Node: "n3",
			Path: "../etc/passwd.cast", SHA256: sum("a"), At: testNow}}).Err
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("err %v, want ErrInvalid", err)
		}
	})
	t.Run("fail/bad-digest", func(t *testing.T) {
		if err := put("n3", "ABC", false); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err %v, want ErrInvalid", err)
		}
	})
	t.Run("fail/delete-only-complete-copy", func(t *testing.T) {
		// n2's is the only complete copy once n1's goes.
		mustApply(t, f, &RecordingHolderDelete{Name: "s1", Node: "n1", OnlyIfCopied: true})
		err := apply(t, f, &RecordingHolderDelete{Name: "s1", Node: "n2", OnlyIfCopied: true}).Err
		if !errors.Is(err, ErrConflict) || holders()["n2"] == nil {
			t.Fatalf("err %v, holders %+v; want ErrConflict and n2's copy kept", err, holders())
		}
		if err := put("n1", sum("a"), false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/delete", func(t *testing.T) {
		mustApply(t, f, &RecordingHolderDelete{Name: "s1", Node: "n1"})
		mustApply(t, f, &RecordingHolderDelete{Name: "s1", Node: "n1"})
		if h := holders(); len(h) != 1 || h["n2"] == nil {
			t.Fatalf("holders %+v", h)
		}
		if _, hs, _ := f.State().RecordingsHeldBy(nil, "n2"); len(hs) != 1 {
			t.Fatalf("held by n2: %d", len(hs))
		}
	})
}
