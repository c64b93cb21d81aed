package raftstore

import (
	"fmt"
	"sort"

	"github.com/hashicorp/go-memdb"
)

// tableDef describes one memdb table: its schema and how to make an empty row
// of it when a snapshot is restored.
type tableDef struct {
	name   string
	schema *memdb.TableSchema
	newObj func() any
}

// tables holds every table; each table's file registers itself in init.
var tables = map[string]tableDef{}

func registerTable(def tableDef) {
	if _, dup := tables[def.name]; dup {
		panic(fmt.Sprintf("raftstore: table %q registered twice", def.name))
	}
	tables[def.name] = def
}

// tableNames returns the registered table names in a stable order.
func tableNames() []string {
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// dbSchema only registers: the tables themselves live one per file.
func dbSchema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for name, def := range tables {
		s.Tables[name] = def.schema
	}
	return s
}
