// Package raftstore is Rampart's replicated state: a hashicorp/raft log whose
// FSM applies typed, versioned commands into a go-memdb database.
//
// It promises that every node holds the same tables in the same order of
// applied commands, that reads are local (with a leader-confirmed mode and a
// bound on follower staleness), that writes on a follower reach the leader
// transparently, and that node-to-node traffic runs over mutual TLS.
//
// The shape follows Consul's state store: one file per memdb table holding its
// schema, queries and write transactions; every write bumps the "index" table
// so that blocking queries (BlockingQuery) wake only watchers of what changed.
package raftstore
