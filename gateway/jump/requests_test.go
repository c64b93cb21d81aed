package jump

import (
	"errors"
	"testing"
	"time"

	gwaccess "github.com/rampart-ssh/rampart/gateway/access"
)

// A session under an access request ends when the request's window does,
// on this node's clock, with the reason the person is shown; not a moment
// before.
func TestRequestWindowEndsSession(t *testing.T) {
	clk := newFakeClock()
	s, ended := limitsSession(clk, 0, 0)
	s.requestID, s.requestEnds = "r-abcdefgh", clk.Now().Add(10*time.Minute)
	stop := s.enforceRequestWindow()
	defer stop()
	clk.advanceTo(s.requestEnds.Add(-time.Second))
	if msgs, _ := ended(); len(msgs) != 0 {
		t.Fatalf("ended before the window's end: %v", msgs)
	}
	clk.advanceTo(s.requestEnds)
	msgs, at := ended()
	if len(msgs) != 1 || msgs[0] != "Rampart: session ended: your access request r-abcdefgh expired" || !at[0].Equal(s.requestEnds) {
		t.Fatalf("ended with %v at %v", msgs, at)
	}
}

// The refusal for want of a grant tells the person how to ask, in ASCII.
func TestRefusalTextAsksForRequest(t *testing.T) {
	p := &Proxy{cfg: Config{RequestCommand: "ssh -p 2222 bastion"}}
	err := &gwaccess.NeedRequestError{Server: "web-1", Project: "web", MaxDuration: 8 * time.Hour}
	want := `no access to web-1 (project web). Ask for it: ssh -p 2222 bastion request web --for 2h --reason "..."`
	if got := p.refusalText(err); got != want {
		t.Errorf("refusal %q, want %q", got, want)
	}
	if got := p.refusalText(errors.New("other")); got != "other" {
		t.Errorf("other refusals changed: %q", got)
	}
	for _, r := range want {
		if r > 127 {
			t.Fatalf("non-ASCII in %q", want)
		}
	}
}
