package ca

import "time"

// RenewAt is when a certificate received at start and valid until end is
// renewed: once two thirds of its lifetime have passed, so that a third is
// left for retries. Every certificate Rampart renews (agent TLS, target host
// certificates, node TLS) follows this one rule. start is when the holder
// received it, not its backdated not-before; a start after end gives end.
func RenewAt(start, end time.Time) time.Time {
	if !start.Before(end) {
		return end
	}
	return start.Add(end.Sub(start) * 2 / 3)
}
