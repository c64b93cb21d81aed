package auditlog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// eventTypeRE is the naming rule of docs/audit-events.md: noun.verb, lower
// case, words joined by "_".
var eventTypeRE = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*\.[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// codeEventTypes reads every non-test Go file of the module under root and
// returns each exported string constant named Event… (untyped, or typed
// string: a constant of another named type, such as a recording's frame
// kind, is not an audit type) by value, with where it is declared. Problems
// (a misnamed type, an audit type written inline) are returned apart.
func codeEventTypes(root string) (types map[string][]string, problems []string, err error) {
	types = map[string][]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "e2e" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if vs.Type != nil {
					if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "string" {
						continue
					}
				}
				for i, name := range vs.Names {
					if !name.IsExported() || !strings.HasPrefix(name.Name, "Event") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue // another constant's value (login.EventBindingRevoke)
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						return err
					}
					where := rel + ":" + name.Name
					if !eventTypeRE.MatchString(v) {
						problems = append(problems, fmt.Sprintf("%s = %q is not named noun.verb (docs/audit-events.md, Naming)", where, v))
					}
					types[v] = append(types[v], where)
				}
			}
		}
		// An audit type is never an inline string: not as an argument of a
		// call that records one, nor as an event's Type.
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || !slices.Contains([]string{"Record", "audit", "record", "event"}, sel.Sel.Name) {
					return true
				}
				for _, a := range n.Args {
					if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, _ := strconv.Unquote(lit.Value); strings.Contains(v, ".") && !strings.ContainsAny(v, " /:") {
							problems = append(problems, fmt.Sprintf("%s: audit type %s written inline; declare an Event… constant", fset.Position(lit.Pos()), lit.Value))
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Type" {
					if lit, ok := n.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING && eventTypeRE.MatchString(strings.Trim(lit.Value, `"`)) {
						problems = append(problems, fmt.Sprintf("%s: audit type %s written inline; declare an Event… constant", fset.Position(lit.Pos()), lit.Value))
					}
				}
			}
			return true
		})
		return nil
	})
	return types, problems, err
}

// catalogue reads docs/audit-events.md: each "### `type`" heading and the
// JSON example under it.
func catalogue(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	heading := regexp.MustCompile("^### `([^`]+)`$")
	out := map[string]string{}
	var cur string
	inJSON := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case heading.MatchString(line):
			cur = heading.FindStringSubmatch(line)[1]
			if _, dup := out[cur]; dup {
				t.Errorf("%s lists %s twice", path, cur)
			}
			out[cur] = ""
		case strings.HasPrefix(line, "### "):
			cur = "" // a heading of another kind ends the entry
		case line == "```json" && cur != "":
			inJSON = true
		case line == "```":
			inJSON = false
		case inJSON && cur != "":
			out[cur] += line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEventCatalogue holds docs/audit-events.md to the code: every type an
// Event… constant declares is listed there with a JSON example of its own
// type, and every type listed is declared. Constants that other packages
// add are found by reading the source, not by a list here.
func TestEventCatalogue(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	code, problems, err := codeEventTypes(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(code) < 40 {
		t.Fatalf("found only %d event types in %s: is the walk reading the module?", len(code), root)
	}
	doc := catalogue(t, filepath.Join(root, "docs", "audit-events.md"))
	for typ, where := range code {
		example, ok := doc[typ]
		if !ok {
			t.Errorf("%s (%s) is not in docs/audit-events.md", typ, strings.Join(where, ", "))
			continue
		}
		var ev struct {
			Type   string            `json:"type"`
			Fields map[string]string `json:"fields"`
		}
		if err := json.Unmarshal([]byte(example), &ev); err != nil || ev.Type != typ {
			t.Errorf("docs/audit-events.md: the example of %s is not an event of that type (%v): %s", typ, err, example)
		}
	}
	for typ := range doc {
		if _, ok := code[typ]; !ok {
			t.Errorf("docs/audit-events.md lists %s, which no Event… constant declares", typ)
		}
	}
}

// The checks themselves: a type missing from the catalogue, one listed that
// nothing declares, a misnamed constant and an inline type all fail.
func TestEventCatalogueCatches(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/a.go", `package a
type Kind string
const (
	EventThingCreate = "thing.create"
	EventFrame Kind = "o"
	eventHidden = "hidden.thing"
	EventBad = "Things.Created.now"
)
func f(r interface{ Record(string, string, map[string]string) }) { r.Record("thing.delete", "", nil) }
`)
	write("docs/audit-events.md", "### `thing.create`\n\n```json\n{\"type\":\"thing.create\"}\n```\n\n### `thing.gone`\n")
	code, problems, err := codeEventTypes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "EventBad") || !strings.Contains(problems[1], `"thing.delete" written inline`) {
		t.Errorf("problems %q, want the misnamed constant and the inline type", problems)
	}
	if _, ok := code["thing.create"]; !ok || len(code) != 2 {
		t.Errorf("types %v, want thing.create and the misnamed one only", code)
	}
	doc := catalogue(t, filepath.Join(dir, "docs", "audit-events.md"))
	if _, ok := doc["thing.gone"]; !ok {
		t.Error("the catalogue reader missed a heading")
	}
	if _, ok := code["thing.gone"]; ok {
		t.Error("thing.gone declared?")
	}
}
