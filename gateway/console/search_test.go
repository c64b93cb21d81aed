package console

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// cast builds an asciicast v2 recording of output events.
func cast(events ...[2]any) string {
	var b strings.Builder
	b.WriteString(`{"version": 2, "width": 80, "height": 24}` + "\n")
	for _, e := range events {
		data, _ := json.Marshal(e[1])
		fmt.Fprintf(&b, "[%v, \"o\", %s]\n", e[0], data)
	}
	return b.String()
}

func TestExtractLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  string
		want []Line
	}{
		{"ok/ansi-removed", cast([2]any{0.5, "\x1b[1;32malice@web-1\x1b[0m:~$ ls\r\n"}, [2]any{1.0, "\x1b]0;title\x07file\r\n"}),
			[]Line{{0.5, "alice@web-1:~$ ls"}, {1.0, "file"}}},
		{"ok/typed-char-by-char-ends-at-newline", cast([2]any{1.0, "e"}, [2]any{1.1, "cho hi"}, [2]any{2.5, "\r\n"}),
			[]Line{{2.5, "echo hi"}}},
		{"ok/escape-split-across-events", cast([2]any{1.0, "a\x1b["}, [2]any{1.2, "31mb\r\n"}),
			[]Line{{1.2, "ab"}}},
		{"ok/backspace-and-carriage-return", cast([2]any{1.0, "abx\bc\r\n"}, [2]any{2.0, "12345\r99\n"}),
			[]Line{{1.0, "abc"}, {2.0, "99345"}}},
		{"ok/last-line-without-newline", cast([2]any{3.0, "$ exit"}), []Line{{3.0, "$ exit"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExtractLines(strings.NewReader(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestExtractLinesStopsWhenFull: what one session gives the index is capped,
// and reading stops at the cap instead of decoding the rest of a long
// recording for nothing.
func TestExtractLinesStopsWhenFull(t *testing.T) {
	line := strings.Repeat("x", 100) + "\r\n"
	var events [][2]any
	for i := range 3 * maxTextBytes / len(line) {
		events = append(events, [2]any{float64(i), line})
	}
	rec := cast(events...)
	cr := &countingReader{r: strings.NewReader(rec)}
	got, err := ExtractLines(cr)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, l := range got {
		total += len(l.Text)
	}
	if total < maxTextBytes || total > maxTextBytes+100 {
		t.Errorf("kept %d bytes of text, want the cap, %d", total, maxTextBytes)
	}
	if cr.n > len(rec)/2 {
		t.Errorf("read %d of %d bytes: reading went on past the cap", cr.n, len(rec))
	}
}

func TestIndexSearch(t *testing.T) {
	idx, err := OpenIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	t0 := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	docs := []Doc{
		{Session: "s-1", User: "alice", Server: "web-1", Project: "web", Start: t0,
			Lines: []Line{{1, "$ ls"}, {7.25, "$ kubectl delete pod api-7f9"}, {8, "pod deleted"}}},
		{Session: "s-2", User: "bob", Server: "db-1", Project: "db", Start: t0.Add(time.Hour),
			Commands: []string{"kubectl delete ns staging"}},
		{Session: "s-3", User: "bob", Server: "db-1", Project: "db", Start: t0.Add(2 * time.Hour), Lines: []Line{{2, "kubectl get pods"}}},
	}
	if err := idx.AddBatch(docs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, q string
		f       Filter
		want    string
	}{
		{"ok/phrase-newest-first", "kubectl delete", Filter{}, "s-2:false:0 s-1:true:7.25"},
		{"ok/case-and-punctuation", "KUBECTL DELETE POD api-7f9", Filter{}, "s-1:true:7.25"},
		{"ok/filter-by-user", "kubectl delete", Filter{User: "alice"}, "s-1:true:7.25"},
		{"ok/not-a-phrase-match", "delete kubectl", Filter{}, ""},
		{"ok/command", "staging", Filter{}, "s-2:false:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits, err := idx.Search(tc.q, tc.f, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hits {
				idx.Locate(&h, tc.q)
				got = append(got, fmt.Sprintf("%s:%v:%v", h.Session, h.InOutput, h.Offset))
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("hits %v, want %s", got, tc.want)
			}
		})
	}
	if !idx.Has("s-1") || idx.Has("s-9") {
		t.Fatal("Has is wrong")
	}
}
