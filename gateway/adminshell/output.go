package adminshell

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/rampart-ssh/rampart/gateway/control"
)

// emit prints a listing or object in the form asked for: JSON, ids only, or
// the text rendering.
func (v *invocation) emit(obj any, ids []string, text func(w io.Writer) error) error {
	switch {
	case v.jsonOut:
		return writeJSON(v.out, obj)
	case v.quiet:
		for _, id := range ids {
			fmt.Fprintln(v.out, clean(id))
		}
		return nil
	default:
		return text(v.out)
	}
}

// done reports a change: the object (or a message object) in JSON mode,
// nothing with --quiet, the message otherwise.
func (v *invocation) done(obj any, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch {
	case v.jsonOut:
		if obj == nil {
			obj = map[string]any{"ok": true, "message": msg}
		}
		return writeJSON(v.out, obj)
	case v.quiet:
		return nil
	default:
		_, err := fmt.Fprintln(v.out, clean(msg))
		return err
	}
}

func writeJSON(w io.Writer, obj any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(obj)
}

// table writes aligned columns for people.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(anySlice(headers)...)
	return t
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (t *table) row(cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(s, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// details writes "key: value" lines, aligned.
type details struct{ tw *tabwriter.Writer }

func newDetails(w io.Writer) *details {
	return &details{tw: tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)}
}

func (d *details) add(key string, value any) {
	fmt.Fprintf(d.tw, "%s:\t%s\n", key, cell(value))
}

func (d *details) flush() error { return d.tw.Flush() }

// cell renders one value for a table: times in UTC to the second, empty as
// "-", and text stripped of anything that would steer a terminal.
func cell(c any) string {
	switch x := c.(type) {
	case string:
		if x == "" {
			return "-"
		}
		return clean(x)
	case time.Time:
		return fmtTime(x)
	case time.Duration:
		return fmtDuration(x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case []string:
		if len(x) == 0 {
			return "-"
		}
		return clean(strings.Join(x, ","))
	case map[string]string:
		if len(x) == 0 {
			return "-"
		}
		return clean(control.LabelString(x))
	default:
		return clean(fmt.Sprint(c))
	}
}

// clean makes untrusted text (IdP claims, labels) safe to print: control
// characters, which could move the cursor or rewrite the screen, and tabs,
// which would break the columns, are shown escaped.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtDuration prints 3m rather than 3m0s, and "-" for none.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// durationJSON is a duration as the flags take it ("3m0s"), empty for none.
func durationJSON(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// timeJSON is a time for JSON output: nil (omitted) when zero.
func timeJSON(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// nonNil keeps JSON arrays as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
