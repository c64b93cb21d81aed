package hostapply

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testHost is a Host on a fakeHost, with a settable clock and a counting
// Reload.
type testHost struct {
	*Host
	f       *fakeHost
	clock   *fakeClock
	reloads atomic.Int32
	// reloadErr makes Reload fail.
	reloadErr error
}

func newTestHost(t *testing.T, f *fakeHost, mod func(*Config)) *testHost {
	t.Helper()
	th := &testHost{f: f, clock: &fakeClock{t: testStart}}
	cfg := Config{
		Root:   f.root,
		Runner: f,
		Now:    th.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reload: func(context.Context) error {
			th.reloads.Add(1)
			return th.reloadErr
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	th.Host = h
	return th
}

// accountCommands filters a command log to the account tools.
func accountCommands(cmds []string) []string {
	out := []string{}
	for _, c := range cmds {
		for _, p := range []string{"useradd ", "usermod ", "userdel ", "groupadd ", "groupdel ", "gpasswd ", "pkill ", "tar "} {
			if strings.HasPrefix(c, p) {
				out = append(out, c)
			}
		}
	}
	return out
}

type wantProblem struct {
	kind Kind
	name string
	err  error
}

// checkProblems wants exactly the problems listed (each matched by kind,
// name and errors.Is).
func checkProblems(t *testing.T, rep Report, want []wantProblem) {
	t.Helper()
	got := slices.Clone(rep.Problems)
	for _, w := range want {
		i := slices.IndexFunc(got, func(p Problem) bool {
			return p.Kind == w.kind && p.Name == w.name && (w.err == nil || errors.Is(p.Err, w.err))
		})
		if i < 0 {
			t.Errorf("no problem %s %s (%v); problems: %v", w.kind, w.name, w.err, rep.Problems)
			continue
		}
		got = slices.Delete(got, i, i+1)
	}
	for _, p := range got {
		t.Errorf("unexpected problem: %v", p)
	}
}

func equalLists(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}
