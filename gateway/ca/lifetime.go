package ca

import (
	"time"

	"github.com/rampart-ssh/rampart/client"
)

// RenewAt is when a certificate received at start and valid until end is
// renewed: once two thirds of its lifetime have passed, so that a third is
// left for retries. Every certificate Rampart renews (agent TLS, target host
// certificates, node TLS) follows this one rule. start is when the holder
// received it, not its backdated not-before; a start after end gives end.
// It is client.RenewAt, which the agent applies too.
func RenewAt(start, end time.Time) time.Time { return client.RenewAt(start, end) }
