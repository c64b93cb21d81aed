package adminshell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Prompt is the interactive shell's prompt.
const Prompt = "rampart> "

// historySize is how many lines the interactive shell remembers.
const historySize = 500

// interruptRune stands for Ctrl-C in the input: x/term would end ReadLine
// with io.EOF on a raw Ctrl-C, and an admin pressing it expects a fresh
// prompt, not a closed session. It is a private-use code point, which no
// key sends.
const interruptRune = '\uE003'

// WindowSize is a terminal's size in characters.
type WindowSize struct {
	Width, Height int
}

// splitWords splits a line into words as a POSIX shell would, without any
// expansion: no variables, no command substitution, no comments. Operators
// that would need a shell (; & | < >) are refused rather than taken as text.
func splitWords(line string) ([]string, error) {
	p := shellwords.NewParser()
	p.ParseEnv, p.ParseBacktick, p.ParseComment = false, false, false
	words, err := p.Parse(line)
	if err != nil {
		return nil, usagef("cannot split the line: a quote is not closed, or a bracket is not quoted")
	}
	if p.Position >= 0 {
		return nil, usagef("shell operators (; & | < >) are not supported: quote them to pass them as text")
	}
	return words, nil
}

// RunInteractive runs the shell on a terminal until the admin leaves (exit,
// Ctrl-D) or rw fails, and returns the session's exit status. The caller ends
// a blocked read by closing the channel under rw.
func (s *Shell) RunInteractive(ctx context.Context, actor Actor, rw io.ReadWriter, width, height int) int {
	return s.RunInteractiveResize(ctx, actor, rw, WindowSize{width, height}, nil)
}

// RunInteractiveResize is RunInteractive that follows the terminal's size
// changes (the SSH window-change requests) from resize until it returns.
//
// The session also ends, at its next prompt, once the admin's own account is
// disabled or deleted.
func (s *Shell) RunInteractiveResize(ctx context.Context, actor Actor, rw io.ReadWriter, size WindowSize, resize <-chan WindowSize) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pump := newInputPump(rw, s.watchActor(ctx, actor))
	defer pump.stop()
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{&interruptReader{r: pump}, rw}, Prompt)
	hist := &history{}
	t.History = hist
	setSize(t, size)
	if resize != nil {
		var wg sync.WaitGroup
		done := make(chan struct{})
		defer wg.Wait()
		defer close(done)
		wg.Go(func() {
			for {
				select {
				case ws, ok := <-resize:
					if !ok {
						return
					}
					setSize(t, ws)
				case <-done:
					return
				}
			}
		})
	}
	c := &completer{sh: s, ctx: ctx, actor: actor, t: t, prompt: Prompt}
	t.AutoCompleteCallback = c.key
	ask := func(question string) (string, error) {
		hist.paused, c.confirming, c.prompt = true, true, question
		t.SetPrompt(question)
		defer func() {
			hist.paused, c.confirming, c.prompt = false, false, Prompt
			t.SetPrompt(Prompt)
		}()
		return t.ReadLine()
	}

	node := ""
	if s.nodeID != "" {
		node = " on node " + s.nodeID
	}
	fmt.Fprintf(t, "Rampart admin shell%s. Signed in as %s.\nType help for commands, Tab to complete, exit to leave.\n", clean(node), clean(actor.Login))
	for {
		if ctx.Err() != nil {
			return ExitError
		}
		line, err := t.ReadLine()
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(t)
			return ExitOK
		}
		if errors.Is(err, errRevoked) {
			fmt.Fprintf(t, "\nRampart: %s; the admin shell is closed.\n", err)
			return ExitError
		}
		if err != nil {
			return ExitError
		}
		args, err := splitWords(line)
		if err != nil {
			fmt.Fprintf(t, "Error: %s\n", err)
			continue
		}
		if len(args) == 0 {
			continue
		}
		v := &invocation{sh: s, ctx: ctx, actor: actor, out: t, raw: rw, errOut: t, ask: ask, watch: pump.watch, interactive: true}
		v.run(args)
		if v.exit {
			return ExitOK
		}
	}
}

func setSize(t *term.Terminal, ws WindowSize) {
	if ws.Width > 0 && ws.Height > 0 {
		_ = t.SetSize(ws.Width, ws.Height)
	}
}

// interruptReader turns each Ctrl-C byte into interruptRune. A 0x03 byte
// never occurs inside a UTF-8 sequence or an escape sequence.
type interruptReader struct {
	r       io.Reader
	buf     []byte
	pending []byte
	err     error
}

func (ir *interruptReader) Read(p []byte) (int, error) {
	for len(ir.pending) == 0 {
		if err := ir.err; err != nil {
			ir.err = nil
			return 0, err
		}
		if len(ir.buf) < len(p) {
			ir.buf = make([]byte, len(p))
		}
		n, err := ir.r.Read(ir.buf[:len(p)])
		ir.pending, ir.err = bytes.ReplaceAll(ir.buf[:n], []byte{3}, []byte(string(interruptRune))), err
	}
	n := copy(p, ir.pending)
	ir.pending = ir.pending[n:]
	return n, nil
}

// history remembers entered lines for the arrow keys, newest first, without
// confirmation answers, blank lines or immediate repeats. It is used only by
// the goroutine that reads lines.
type history struct {
	lines  []string
	paused bool
}

func (h *history) Add(line string) {
	if h.paused || strings.TrimSpace(line) == "" || (len(h.lines) > 0 && h.lines[len(h.lines)-1] == line) {
		return
	}
	h.lines = append(h.lines, line)
	if len(h.lines) > historySize {
		h.lines = h.lines[len(h.lines)-historySize:]
	}
}

func (h *history) Len() int { return len(h.lines) }

func (h *history) At(i int) string { return h.lines[len(h.lines)-1-i] }

// completer completes commands, subcommands, flags and object names on Tab,
// with the same engine cobra uses for shell completion, and clears the line
// on Ctrl-C.
type completer struct {
	sh    *Shell
	ctx   context.Context
	actor Actor
	t     *term.Terminal
	// prompt and confirming follow what the shell is reading.
	prompt     string
	confirming bool
}

// key is the terminal's AutoCompleteCallback: it sees every key press.
func (c *completer) key(line string, pos int, key rune) (string, int, bool) {
	switch {
	case key == interruptRune:
		// Show the abandoned line with ^C, then start afresh.
		fmt.Fprintf(c.t, "%s%s^C\n", c.prompt, line)
		return "", 0, true
	case key == '\t' && !c.confirming:
		return c.tab(line, pos)
	}
	return "", 0, false
}

func (c *completer) tab(line string, pos int) (string, int, bool) {
	before := line[:pos]
	start := wordStart(before)
	words, err := splitWords(before[:start])
	if err != nil {
		return "", 0, false
	}
	partial := unquotePartial(before[start:])
	cands, noSpace := c.candidates(words, partial)
	var matches []string
	for _, cand := range cands {
		if strings.HasPrefix(cand, partial) {
			matches = append(matches, cand)
		}
	}
	var repl string
	switch {
	case len(matches) == 0:
		return "", 0, false
	case len(matches) == 1:
		repl = quoteWord(matches[0])
		if !noSpace {
			repl += " "
		}
	default:
		prefix := commonPrefix(matches)
		if len(prefix) <= len(partial) || quoteWord(prefix) != prefix {
			fmt.Fprintf(c.t, "%s%s\n%s\n", c.prompt, line, clean(strings.Join(matches, "  ")))
			return line, pos, true
		}
		repl = prefix
	}
	return line[:start] + repl + line[pos:], start + len(repl), true
}

// candidates asks cobra's completion command what may follow words; the
// bool says not to add a space after a completion.
func (c *completer) candidates(words []string, partial string) ([]string, bool) {
	var out bytes.Buffer
	v := &invocation{sh: c.sh, ctx: c.ctx, actor: c.actor, out: &out, errOut: io.Discard, interactive: true}
	root := v.newRoot()
	root.SetArgs(append(append([]string{cobra.ShellCompNoDescRequestCmd}, words...), partial))
	if _, err := root.ExecuteC(); err != nil {
		return nil, false
	}
	var cands []string
	var directive int
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if d, ok := strings.CutPrefix(l, ":"); ok {
			_, _ = fmt.Sscan(d, &directive)
			continue
		}
		if l != "" {
			cands = append(cands, l)
		}
	}
	if cobra.ShellCompDirective(directive)&cobra.ShellCompDirectiveError != 0 {
		return nil, false
	}
	return cands, cobra.ShellCompDirective(directive)&cobra.ShellCompDirectiveNoSpace != 0
}

// wordStart is the byte offset where the word under completion begins in
// before (len(before) after a separating space). It only finds a position;
// splitting is splitWords' job.
func wordStart(before string) int {
	start, inWord, escaped := 0, false, false
	var quote rune
	for i, r := range before {
		switch {
		case escaped:
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			}
		case r == ' ' || r == '\t':
			inWord = false
		default:
			if !inWord {
				start, inWord = i, true
			}
			if r == '\\' {
				escaped = true
			} else if r == '\'' || r == '"' {
				quote = r
			}
		}
	}
	if !inWord {
		return len(before)
	}
	return start
}

// unquotePartial is the value of a partly typed word, whose quote may still
// be open.
func unquotePartial(raw string) string {
	for _, closing := range []string{"", "'", `"`} {
		if w, err := splitWords(raw + closing); err == nil && len(w) <= 1 {
			if len(w) == 0 {
				return ""
			}
			return w[0]
		}
	}
	return raw
}

func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}
