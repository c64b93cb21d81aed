package ca

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestBackupKey(t *testing.T) {
	newKEK := func() *KEK {
		raw := make([]byte, KEKSize)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		k, err := NewKEK(raw)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := newKEK()
	a, err := k.BackupKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.BackupKey()
	if len(a) != BackupKeySize || !bytes.Equal(a, b) {
		t.Fatalf("BackupKey = %x then %x: want the same %d bytes each time", a, b, BackupKeySize)
	}
	if bytes.Equal(a, k.raw) {
		t.Fatal("BackupKey is the KEK itself")
	}
	if other, _ := newKEK().BackupKey(); bytes.Equal(a, other) {
		t.Fatal("two KEKs derive the same backup key")
	}
}

// The audit key is the same from the same KEK, another from another, and
// not the backup key's bytes.
func TestAuditKey(t *testing.T) {
	newKEK := func() *KEK {
		raw := make([]byte, KEKSize)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		k, err := NewKEK(raw)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := newKEK()
	a, err := k.AuditKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.AuditKey()
	if !a.Equal(b) {
		t.Fatal("AuditKey differs between calls")
	}
	if bk, _ := k.BackupKey(); bytes.Equal(a.Seed(), bk) {
		t.Fatal("the audit key is the backup key")
	}
	if other, _ := newKEK().AuditKey(); a.Equal(other) {
		t.Fatal("two KEKs derive the same audit key")
	}
}

// The audit spill key is the same from the same KEK, another from another,
// and none of the other derived keys.
func TestAuditSpillKey(t *testing.T) {
	raw := make([]byte, KEKSize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.AuditSpillKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.AuditSpillKey()
	bk, _ := k.BackupKey()
	ak, _ := k.AuditKey()
	sk, _ := k.ConsoleShareKey()
	if len(a) != 32 || !bytes.Equal(a, b) || bytes.Equal(a, bk) || bytes.Equal(a, ak.Seed()) || bytes.Equal(a, sk) || bytes.Equal(a, raw) {
		t.Fatalf("AuditSpillKey %x: want 32 bytes, stable, and apart from the other keys", a)
	}
}
