package frontdoor

import (
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/raftstore"
)

// BenchmarkBoundKeyLogin measures the server-side cost of a login with a key
// already bound to an active user: the SSH handshake (key exchange, host key
// signature, public key verification) plus the binding and user lookup.
// Clients run in the same process, so the figure includes their half of the
// handshake too: the node alone does better than this.
func BenchmarkBoundKeyLogin(b *testing.B) {
	d := startDoorB(b)
	key := newKeyB(b)
	now := time.Now()
	if _, err := d.store.Apply(b.Context(), &raftstore.UserUpsert{User: raftstore.User{ID: "sub-alice", Login: "alice", UnixName: "alice"}, Now: now}); err != nil {
		b.Fatal(err)
	}
	_, u, _ := d.store.State().UserByID(nil, "sub-alice")
	if _, err := d.svc.Bind(b.Context(), u, key.PublicKey(), loginBindInfo()); err != nil {
		b.Fatal(err)
	}
	cfg := &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(key)}, HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := gossh.Dial("tcp", d.addr, cfg)
			if err != nil {
				b.Error(err)
				return
			}
			c.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}
