package cluster

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Presence messages, on the subject <prefix>.presence (docs/cluster.md):
//
//	version (1 byte) | type (1 byte) | origin's length (uvarint) | origin |
//	update (1): epoch (8 bytes, big-endian) | seq (uvarint) | flags (1 byte; bit 0: reset) |
//	            ttl in milliseconds (uvarint) |
//	            entries to the end: key length (uvarint, 1..MaxPresenceKey) | key | connections (uvarint)
//	bye (2):    epoch (8 bytes)
//	sync (3):   the node asked (length uvarint, 0..MaxNodeID, then the id; empty: every node)
//
// An update's entries carry absolute counts (0: the user left the node), so
// applying one twice changes nothing; a reset update replaces what the
// receiver holds for its origin. Each node numbers its updates 1, 2, 3, …
// within an epoch (a random number chosen at start): a gap tells the
// receiver to ask for a full state (sync).
//
// Roster messages, on the subject <prefix>.rosters, are the same updates
// and syncs (no bye: the presence goodbye forgets a node's rosters too),
// numbered on their own, whose entries name a roster and a member:
//
//	entries to the end: roster length (uvarint, 1..MaxPresenceKey) | roster |
//	                    member length (uvarint, 1..MaxPresenceKey) | member | count (uvarint)
const (
	presUpdate = 1
	presBye    = 2
	presSync   = 3

	flagReset = 1
)

// MaxPresenceKey bounds the length of a user id in presence: longer user
// ids are not tracked (Stats.Untracked counts their bindings).
const MaxPresenceKey = 1024

// maxEntryConns bounds an entry's connections on the wire.
const maxEntryConns = 1 << 31

// presMsg is a decoded presence message; its slices point into the buffer
// it was decoded from.
type presMsg struct {
	typ     byte
	origin  []byte
	epoch   uint64
	seq     uint64
	flags   byte
	ttl     time.Duration
	entries []byte // update: validated entries
	want    []byte // sync: the node asked, or empty
	rosters bool   // decoded from <prefix>.rosters: entries name a roster and a member
}

func appendPresHeader(b []byte, typ byte, origin string) []byte {
	b = append(b, Version, typ)
	b = binary.AppendUvarint(b, uint64(len(origin)))
	return append(b, origin...)
}

func appendUpdateHeader(b []byte, origin string, epoch, seq uint64, flags byte, ttl time.Duration) []byte {
	b = appendPresHeader(b, presUpdate, origin)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.AppendUvarint(b, seq)
	b = append(b, flags)
	return binary.AppendUvarint(b, uint64(ttl/time.Millisecond))
}

func appendEntry(b []byte, key string, conns int32) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return binary.AppendUvarint(b, uint64(max(conns, 0)))
}

// entrySize is an upper bound of appendEntry's length.
func entrySize(key string) int { return 2*binary.MaxVarintLen32 + len(key) }

func appendRosterEntry(b []byte, roster, member string, count int32) []byte {
	b = binary.AppendUvarint(b, uint64(len(roster)))
	b = append(b, roster...)
	return appendEntry(b, member, count)
}

// rosterEntrySize is an upper bound of appendRosterEntry's length.
func rosterEntrySize(roster, member string) int {
	return binary.MaxVarintLen32 + len(roster) + entrySize(member)
}

// decodePresence decodes and validates a presence message without
// allocating.
func decodePresence(b []byte) (presMsg, error) { return decodePres(b, false) }

// decodeRosters decodes and validates a roster message (an update or a
// sync) without allocating.
func decodeRosters(b []byte) (presMsg, error) {
	m, err := decodePres(b, true)
	if err == nil && m.typ == presBye {
		return m, fmt.Errorf("%w: a goodbye on the rosters subject", ErrMalformed)
	}
	return m, err
}

func decodePres(b []byte, rosters bool) (presMsg, error) {
	m := presMsg{rosters: rosters}
	if len(b) < 2 {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] > Version {
		return m, fmt.Errorf("%w: version %d", ErrNewerVersion, b[0])
	}
	if b[0] != Version {
		return m, fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	m.typ = b[1]
	origin, n, err := nodeID(b[2:])
	if err != nil {
		return m, err
	}
	m.origin = origin
	rest := b[2+n:]
	switch m.typ {
	case presUpdate:
		if len(rest) < 8 {
			return m, fmt.Errorf("%w: truncated update", ErrMalformed)
		}
		m.epoch = binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		var ok bool
		if m.seq, rest, ok = uvarint(rest); !ok || m.seq == 0 {
			return m, fmt.Errorf("%w: seq", ErrMalformed)
		}
		if len(rest) < 1 || rest[0]&^flagReset != 0 {
			return m, fmt.Errorf("%w: flags", ErrMalformed)
		}
		m.flags = rest[0]
		rest = rest[1:]
		var ms uint64
		if ms, rest, ok = uvarint(rest); !ok || ms < uint64(minTTL/time.Millisecond) || ms > uint64(maxTTL/time.Millisecond) {
			return m, fmt.Errorf("%w: ttl", ErrMalformed)
		}
		m.ttl = time.Duration(ms) * time.Millisecond
		m.entries = rest
		for len(rest) > 0 {
			var err error
			if rosters {
				_, _, _, rest, err = nextRosterEntry(rest)
			} else {
				_, _, rest, err = nextEntry(rest)
			}
			if err != nil {
				return m, err
			}
		}
	case presBye:
		if len(rest) != 8 {
			return m, fmt.Errorf("%w: bye of %d bytes", ErrMalformed, len(rest))
		}
		m.epoch = binary.BigEndian.Uint64(rest)
	case presSync:
		l, r, ok := uvarint(rest)
		if !ok || l > MaxNodeID || uint64(len(r)) != l {
			return m, fmt.Errorf("%w: sync", ErrMalformed)
		}
		m.want = r
	default:
		return m, fmt.Errorf("%w: presence type %d", ErrMalformed, m.typ)
	}
	return m, nil
}

// nextEntry decodes the entry at the start of b.
func nextEntry(b []byte) (key []byte, conns int32, rest []byte, err error) {
	l, b, ok := uvarint(b)
	if !ok || l == 0 || l > MaxPresenceKey || uint64(len(b)) < l {
		return nil, 0, nil, fmt.Errorf("%w: entry key", ErrMalformed)
	}
	key, b = b[:l], b[l:]
	c, b, ok := uvarint(b)
	if !ok || c >= maxEntryConns {
		return nil, 0, nil, fmt.Errorf("%w: entry count", ErrMalformed)
	}
	return key, int32(c), b, nil
}

// nextRosterEntry decodes the roster entry at the start of b.
func nextRosterEntry(b []byte) (roster, member []byte, count int32, rest []byte, err error) {
	l, b, ok := uvarint(b)
	if !ok || l == 0 || l > MaxPresenceKey || uint64(len(b)) < l {
		return nil, nil, 0, nil, fmt.Errorf("%w: roster name", ErrMalformed)
	}
	roster, b = b[:l], b[l:]
	member, count, rest, err = nextEntry(b)
	return roster, member, count, rest, err
}

// eachRoster calls f for each entry of a validated roster update.
func (m *presMsg) eachRoster(f func(roster, member []byte, count int32)) {
	for rest := m.entries; len(rest) > 0; {
		roster, member, c, r, err := nextRosterEntry(rest)
		if err != nil {
			return
		}
		f(roster, member, c)
		rest = r
	}
}

// each calls f for each entry of a validated update.
func (m *presMsg) each(f func(key []byte, conns int32)) {
	for rest := m.entries; len(rest) > 0; {
		key, c, r, err := nextEntry(rest)
		if err != nil {
			return
		}
		f(key, c)
		rest = r
	}
}

// uvarint decodes a uvarint in its shortest form.
func uvarint(b []byte) (uint64, []byte, bool) {
	v, w := binary.Uvarint(b)
	if w <= 0 || w != uvarintLen(v) {
		return 0, nil, false
	}
	return v, b[w:], true
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
