package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A console search is audited with what it showed, and is not answered
// when it cannot be audited.
func TestConsoleSearchAudited(t *testing.T) {
	au := &switchAuditor{}
	c, _, _ := directConsole(t, au)
	idx, err := OpenIndex("")
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := idx.Add(Doc{Session: "s-1", User: "ann", Lines: []Line{{T: 2, Text: "$ cat /etc/shadow"}}}); err != nil {
		t.Fatal(err)
	}
	c.deps.Search = idx
	search := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		c.sessionsPage(w, httptest.NewRequest(http.MethodGet, "/console/?q=etc+shadow", nil), &consoleSession{User: "ann"})
		return w
	}
	if w := search(); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "cat /etc/shadow") ||
		au.count(EventSessionSearch+" ann") != 1 {
		t.Fatalf("%d; events %v", w.Code, au.events)
	}
	au.set(true)
	if w := search(); w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "cat /etc/shadow") {
		t.Fatalf("with the audit log down: %d", w.Code)
	}
}
