package cluster

import (
	"encoding/binary"
	"time"
)

// Crash stops n as a killed process would: no goodbye to the other nodes,
// nothing flushed.
func (n *Node) Crash() { n.crash() }

// Update encodes a presence update from origin with the given user →
// connections entries.
func Update(origin string, epoch, seq uint64, reset bool, ttl time.Duration, entries map[string]int32) []byte {
	flags := byte(0)
	if reset {
		flags = flagReset
	}
	b := appendUpdateHeader(nil, origin, epoch, seq, flags, ttl)
	for k, n := range entries {
		b = appendEntry(b, k, n)
	}
	return b
}

// Bye encodes origin's goodbye.
func Bye(origin string, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPresHeader(nil, presBye, origin), epoch)
}

// SyncWanted decodes a sync request: the node asked ("" for every node).
func SyncWanted(b []byte) (string, bool) {
	m, err := decodePresence(b)
	if err != nil || m.typ != presSync {
		return "", false
	}
	return string(m.want), true
}

// Sync encodes origin's request for want's full state.
func Sync(origin, want string) []byte {
	return append(append(appendPresHeader(nil, presSync, origin), byte(len(want))), want...)
}

// Reset reports whether b is an update that starts a full state, and its
// origin.
func Reset(b []byte) (string, bool) {
	m, err := decodePresence(b)
	return string(m.origin), err == nil && m.typ == presUpdate && m.flags&flagReset != 0
}

// RosterUpdate encodes a roster update from origin with the given
// (roster, member) → count entries.
func RosterUpdate(origin string, epoch, seq uint64, reset bool, ttl time.Duration, entries map[[2]string]int32) []byte {
	flags := byte(0)
	if reset {
		flags = flagReset
	}
	b := appendUpdateHeader(nil, origin, epoch, seq, flags, ttl)
	for k, n := range entries {
		b = appendRosterEntry(b, k[0], k[1], n)
	}
	return b
}
