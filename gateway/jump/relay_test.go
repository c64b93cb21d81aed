package jump

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

// chunkReader returns its data in reads of the given sizes (then whatever
// the caller's buffer holds), like an SSH channel handing out what arrived.
type chunkReader struct {
	data   []byte
	chunks []int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(c.chunks) > 0 {
		n = min(n, c.chunks[0])
		c.chunks = c.chunks[1:]
	}
	n = min(n, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestRelayCopiesEverythingInOrder(t *testing.T) {
	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	for _, tc := range []struct {
		name   string
		chunks []int
	}{
		{"ok/bulk", nil},
		{"ok/keystrokes", []int{1, 1, 3, 1, 2}},
		{"ok/mixed-small-then-bulk-then-small", []int{7, 512, 40000, 32768, 100, 512, 512, 9000, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := relay(&out, &chunkReader{data: data, chunks: tc.chunks})
			if err != nil {
				t.Fatalf("relay: %v", err)
			}
			if n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("relayed %d bytes (equal=%v), want the %d bytes read", n, bytes.Equal(out.Bytes(), data), len(data))
			}
		})
	}
}

// packetReader hands out one SSH packet's data at most per read: a channel
// whose sender is not ahead of the relay.
type packetReader struct {
	packets [][]byte
}

func (r *packetReader) Read(p []byte) (int, error) {
	if len(r.packets) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.packets[0])
	if r.packets[0] = r.packets[0][n:]; len(r.packets[0]) == 0 {
		r.packets = r.packets[1:]
	}
	return n, nil
}

// countingWriter counts writes.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestRelayStaysInBulkPacketByPacket: a transfer arriving a packet at a
// time is written a packet at a time, not each packet split into a small
// read's 512 bytes and the rest (twice the packets sent onward).
func TestRelayStaysInBulkPacketByPacket(t *testing.T) {
	for _, size := range []int{16 << 10, 30 << 10, 32 << 10} {
		var packets [][]byte
		for range 1000 {
			packets = append(packets, bytes.Repeat([]byte{'x'}, size))
		}
		var out countingWriter
		n, err := relay(&out, &packetReader{packets: packets})
		if err != nil || n != int64(1000*size) {
			t.Fatalf("%d-byte packets: relayed %d, %v", size, n, err)
		}
		if out.writes > 1002 {
			t.Errorf("%d-byte packets: %d writes for 1000 packets", size, out.writes)
		}
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("closed")
	}
	n := min(len(p), f.after)
	f.after -= n
	if n < len(p) {
		return n, errors.New("closed")
	}
	return n, nil
}

func TestRelayStopsWhenTheWriterFails(t *testing.T) {
	data := make([]byte, 1<<20)
	n, err := relay(&failingWriter{after: 100000}, &chunkReader{data: data})
	if err == nil || err.Error() != "closed" {
		t.Fatalf("relay error %v, want the writer's", err)
	}
	if n != 100000 {
		t.Fatalf("relay counted %d bytes, want the 100000 written", n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reset") }

func TestRelayReturnsReadErrorsButNotEOF(t *testing.T) {
	if _, err := relay(io.Discard, errReader{}); err == nil || err.Error() != "reset" {
		t.Fatalf("relay error %v, want reset", err)
	}
	if _, err := relay(io.Discard, bytes.NewReader(nil)); err != nil {
		t.Fatalf("relay of an empty reader: %v, want nil", err)
	}
}

// pauseReader hands out one packet, then waits until closed: a terminal
// that redrew its screen and waits for a key.
type pauseReader struct {
	packet []byte
	pause  chan struct{}
}

func (r *pauseReader) Read(p []byte) (int, error) {
	if len(r.packet) > 0 {
		n := copy(p, r.packet)
		r.packet = r.packet[n:]
		return n, nil
	}
	<-r.pause
	return 0, io.EOF
}

// notifyWriter reports each write's size.
type notifyWriter chan int

func (w notifyWriter) Write(p []byte) (int, error) { w <- len(p); return len(p), nil }

// TestRelayWaitsOnLittle: after a 20 KiB screen redraw a relay waiting for
// the next key holds at most a packet-sized buffer; a sender that keeps
// ahead is read 128 KiB at a time.
func TestRelayWaitsOnLittle(t *testing.T) {
	r := &pauseReader{packet: bytes.Repeat([]byte{'x'}, 20<<10), pause: make(chan struct{})}
	w := make(notifyWriter, 8)
	done := make(chan struct{})
	go func() { _, _ = relay(w, r); close(done) }()
	for got := 0; got < 20<<10; got += <-w {
	}
	time.Sleep(50 * time.Millisecond) // the relay's next Read is waiting
	if held := bulkHeld.Load(); held > 32<<10 {
		t.Errorf("a waiting relay holds %d bytes of buffers, want at most 32 KiB", held)
	}
	close(r.pause)
	<-done

	var out countingWriter
	data := bytes.Repeat([]byte{'y'}, 8<<20)
	if _, err := relay(&out, &chunkReader{data: data}); err != nil || out.Len() != len(data) {
		t.Fatalf("relayed %d of %d bytes: %v", out.Len(), len(data), err)
	}
	if out.writes > len(data)/(128<<10)+8 {
		t.Errorf("a sender ahead: %d writes for %d MiB, want reads of 128 KiB", out.writes, len(data)>>20)
	}
}
