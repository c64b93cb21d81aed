package auditexport

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// TestHTTPSinksFollowNoRedirect: a receiver that answers with a redirect
// (to plain http, here) gets the batch refused with a clear error, and the
// place it points to never sees the token or the signed body.
func TestHTTPSinksFollowNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		if got := r.Header.Get("Authorization"); got != "" {
			t.Errorf("the redirect's target got Authorization %q", got)
		}
	}))
	t.Cleanup(plain.Close)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirecting := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plain.URL+r.URL.Path, code)
		}))
		t.Cleanup(redirecting.Close)
		tlsCfg := redirecting.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		tlsCfg.MinVersion = tls.VersionTLS12
		batch := []*raftstore.AuditEvent{{Seq: 1, Time: time.Now().UTC(), Type: "test.event", Actor: "alice"}}
		sinks := map[string]Sink{
			"hec":     NewHECSink(redirecting.URL, "s3cret-token", "n1", "", "rampart:audit", "", tlsCfg, 5*time.Second),
			"webhook": NewWebhookSink(redirecting.URL+"/hook", []byte(strings.Repeat("k", 32)), tlsCfg, 5*time.Second, time.Now),
		}
		for name, sink := range sinks {
			t.Run("fail/"+name+"-"+http.StatusText(code), func(t *testing.T) {
				err := sink.Send(context.Background(), batch)
				if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
					t.Fatalf("Send = %v, want the redirect refused", err)
				}
				if strings.Contains(err.Error(), plain.URL) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error carries the target or the token: %v", err)
				}
				if n := elsewhere.Load(); n != 0 {
					t.Fatalf("the redirect was followed (%d requests)", n)
				}
				_ = sink.Close()
			})
		}
	}
}
