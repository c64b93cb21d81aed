package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/client"
)

// castToJSON keeps the header and every event, and of a partial copy the
// events that are whole; a damaged complete copy is refused.
func TestCastToJSON(t *testing.T) {
	const cast = `{"version":2,"width":80,"height":24}` + "\n" + `[0.1, "o", "hi\r\n"]` + "\n" + `[0.2,"i","x"]` + "\n"
	for _, tc := range []struct {
		name, in string
		partial  bool
		events   int
		fail     string
	}{
		{"ok/whole", cast, false, 2, ""},
		{"ok/empty-session", `{"version":2,"width":80,"height":24}` + "\n", false, 0, ""},
		{"ok/partial-cut-mid-event", cast + `[0.3,"o","cut`, true, 2, ""},
		{"fail/cut-but-not-partial", cast + `[0.3,"o","cut`, false, 0, "line 4"},
		{"fail/no-header", `[0.1,"o","x"]` + "\n", false, 0, "asciicast header"},
		{"fail/empty", "", false, 0, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := castToJSON(&out, strings.NewReader(tc.in), "s-1", &client.Recording{SHA256: "ab", Partial: tc.partial})
			if tc.fail != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("err %v, want one saying %q", err, tc.fail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Session string            `json:"session"`
				Partial bool              `json:"partial"`
				Header  map[string]any    `json:"header"`
				Raw     []json.RawMessage `json:"events"`
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out.String())
			}
			if doc.Session != "s-1" || doc.Partial != tc.partial || doc.Header["width"] != float64(80) || len(doc.Raw) != tc.events {
				t.Fatalf("got %s", out.String())
			}
			if tc.events > 0 && string(doc.Raw[0]) != `[0.1,"o","hi\r\n"]` {
				t.Fatalf("first event %s", doc.Raw[0])
			}
		})
	}
}
