package client_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// jsonFields lists the JSON names (and their kinds) of a struct type's
// fields, descending into slices of structs.
func jsonFields(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			out = append(out, jsonFields(ft.Elem(), prefix+name+"[].")...)
			continue
		}
		out = append(out, prefix+name+" "+f.Tag.Get("json")+" "+ft.Kind().String())
	}
	slices.Sort(out)
	return out
}

// GET /v1/cluster/status is written from raftstore.Status and read into
// api.ClusterStatus (the client must not link raft): they must agree.
func TestClusterStatusWire(t *testing.T) {
	got := jsonFields(reflect.TypeFor[api.ClusterStatus](), "")
	want := jsonFields(reflect.TypeFor[raftstore.Status](), "")
	if !slices.Equal(got, want) {
		t.Fatalf("api.ClusterStatus has fields\n%s\nraftstore.Status has\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
