package cluster

import (
	"bytes"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

func relayed() []tio.RelayMessage {
	p := &codec.Packet{Type: 7, Body: []byte("hello")}
	return []tio.RelayMessage{
		{Op: tio.RelaySend, Target: tio.User("alice"), Packet: p},
		{Op: tio.RelaySend, Target: tio.Group("room-1"), Packet: &codec.Packet{Type: 0xffff}},
		{Op: tio.RelaySend, Target: tio.Token("t"), Packet: p},
		{Op: tio.RelaySend, Target: tio.BsID("order-9"), Packet: p},
		{Op: tio.RelaySend, Target: tio.IP(netip.MustParseAddr("10.0.0.1")), Packet: p},
		{Op: tio.RelaySend, Target: tio.IP(netip.MustParseAddr("fe80::1%eth0")), Packet: p},
		{Op: tio.RelaySend, Target: tio.All(), Packet: p},
		{Op: tio.RelayClose, Target: tio.User("alice"), Reason: channel.ReasonClosedByApp},
		{Op: tio.RelayClose, Target: tio.All(), Reason: channel.ReasonServerShutdown},
		{Op: tio.RelayClose, Target: tio.Group("room"), Reason: channel.ReasonClosedByApp, Text: "kicked by an admin"},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, rm := range relayed() {
		b, err := appendMessage(nil, "node-1", rm)
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("%v: %v", rm.Target, err)
		}
		if m.op != rm.Op || string(m.origin) != "node-1" || m.target != rm.Target || m.reason != rm.Reason || string(m.text) != rm.Text {
			t.Fatalf("%+v decoded as %+v", rm, m)
		}
		if rm.Op == tio.RelaySend && (m.typ != rm.Packet.Type || !bytes.Equal(m.body, rm.Packet.Body)) {
			t.Fatalf("packet %+v decoded as %d %q", rm.Packet, m.typ, m.body)
		}
	}
	// The documented example (docs/cluster.md).
	b, _ := appendMessage(nil, "a", tio.RelayMessage{Op: tio.RelaySend, Target: tio.User("bob"), Packet: &codec.Packet{Type: 6, Body: []byte("hi")}})
	if want := []byte{1, 1, 1, 'a', 4, 3, 'b', 'o', 'b', 0, 6, 'h', 'i'}; !bytes.Equal(b, want) {
		t.Fatalf("wire form % x, want % x", b, want)
	}
	// A long text is cut at a character boundary.
	long := strings.Repeat("é", MaxCloseText)
	b, _ = appendMessage(nil, "a", tio.RelayMessage{Op: tio.RelayClose, Target: tio.All(), Reason: channel.ReasonClosedByApp, Text: long})
	if m, err := decodeMessage(b); err != nil || len(m.text) != MaxCloseText || !utf8.Valid(m.text) {
		t.Fatalf("a long close text: %d bytes, %v", len(m.text), err)
	}
	for _, bad := range []tio.RelayMessage{
		{Op: tio.RelaySend, Target: tio.User("x")},
		{Op: 9, Target: tio.User("x")},
		{Op: tio.RelayClose},
	} {
		if _, err := appendMessage(nil, "n", bad); err == nil {
			t.Fatalf("%+v encoded", bad)
		}
	}
}

func TestMessageDecodeErrors(t *testing.T) {
	good, _ := appendMessage(nil, "n", tio.RelayMessage{Op: tio.RelayClose, Target: tio.User("u"), Reason: channel.ReasonClosedByApp})
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"newer", []byte{Version + 1}, ErrMalformed}, // too short to be anything
		{"newer version", []byte{Version + 1, 1}, ErrNewerVersion},
		{"version 0", []byte{0, 1, 1, 'n', 1, 0}, ErrMalformed},
		{"op", []byte{Version, 3, 1, 'n', 1, 0}, ErrMalformed},
		{"no origin", []byte{Version, 1, 0, 1, 0, 0}, ErrMalformed},
		{"long origin", append([]byte{Version, 1, MaxNodeID + 1}, make([]byte, MaxNodeID+1)...), ErrMalformed},
		{"origin not shortest", []byte{Version, 1, 0x81, 0x00, 'n', 1, 0, 0}, ErrMalformed},
		{"truncated origin", []byte{Version, 1, 5, 'n'}, ErrMalformed},
		{"bad target", []byte{Version, 1, 1, 'n', 9, 0, 0}, ErrMalformed},
		{"id target", append([]byte{Version, 1, 1, 'n', 2}, make([]byte, 10)...), ErrMalformed},
		{"no packet type", []byte{Version, 1, 1, 'n', 1, 0}, ErrMalformed},
		{"close without reason", good[:len(good)-1], ErrMalformed},
		{"close text not UTF-8", append(good[:len(good):len(good)], 0xff), ErrMalformed},
		{"close text too long", append(good[:len(good):len(good)], strings.Repeat("x", MaxCloseText+1)...), ErrMalformed},
	} {
		if _, err := decodeMessage(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// An unknown reason (a newer node's) closes as ClosedByApp.
	unknown := append(good[:len(good)-1:len(good)-1], 200)
	if m, err := decodeMessage(unknown); err != nil || m.reason != channel.ReasonClosedByApp {
		t.Fatalf("unknown reason: %+v, %v", m, err)
	}
}

// The decoder allocates the target's key, and nothing for what a message
// announces: a length is checked against the bytes present first.
func TestDecodeAllocates(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	b, _ := appendMessage(nil, "node", tio.RelayMessage{Op: tio.RelaySend, Target: tio.Group(strings.Repeat("g", 1000)), Packet: &codec.Packet{Body: make([]byte, 1<<16)}})
	if n := testing.AllocsPerRun(100, func() { _, _ = decodeMessage(b) }); n > 1 {
		t.Fatalf("decodeMessage: %v allocations", n)
	}
	lie := []byte{Version, 1, 1, 'n', byte(tio.KindGroup), 0xff, 0xff, 0x03} // a 64 KiB name, absent
	if n := allocated(func() { _, _ = decodeMessage(lie) }); n > 512 {
		t.Fatalf("decodeMessage of a lie: %d bytes allocated", n)
	}
	u := appendUpdateHeader(nil, "node", 1, 1, flagReset, time.Second)
	for i := range 100 {
		u = appendEntry(u, strings.Repeat("u", i+1), int32(i))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = decodePresence(u) }); n != 0 {
		t.Fatalf("decodePresence: %v allocations", n)
	}
}

// allocated returns the bytes f allocates (an average over 100 runs).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 100
}

func TestPresenceRoundTrip(t *testing.T) {
	u := appendUpdateHeader(nil, "n1", 42, 7, flagReset, 1500*time.Millisecond)
	u = appendEntry(u, "alice", 2)
	u = appendEntry(u, "bob", 0)
	m, err := decodePresence(u)
	if err != nil || m.typ != presUpdate || string(m.origin) != "n1" || m.epoch != 42 || m.seq != 7 || m.flags != flagReset || m.ttl != 1500*time.Millisecond {
		t.Fatalf("%+v, %v", m, err)
	}
	var got []string
	m.each(func(k []byte, n int32) { got = append(got, string(k)+"="+string(rune('0'+n))) })
	if strings.Join(got, ",") != "alice=2,bob=0" {
		t.Fatalf("entries %v", got)
	}
	bye := appendPresHeader(nil, presBye, "n1")
	bye = append(bye, 0, 0, 0, 0, 0, 0, 0, 42)
	if m, err := decodePresence(bye); err != nil || m.typ != presBye || m.epoch != 42 {
		t.Fatalf("bye %+v, %v", m, err)
	}
	sync := append(appendPresHeader(nil, presSync, "n1"), 2, 'n', '2')
	if m, err := decodePresence(sync); err != nil || m.typ != presSync || string(m.want) != "n2" {
		t.Fatalf("sync %+v, %v", m, err)
	}
	for name, b := range map[string][]byte{
		"seq 0":     appendUpdateHeader(nil, "n", 1, 0, 0, time.Second),
		"flags":     appendUpdateHeader(nil, "n", 1, 1, 2, time.Second),
		"ttl":       appendUpdateHeader(nil, "n", 1, 1, 0, time.Millisecond),
		"long ttl":  appendUpdateHeader(nil, "n", 1, 1, 0, 2*time.Hour),
		"empty key": append(appendUpdateHeader(nil, "n", 1, 1, 0, time.Second), 0, 1),
		"long key":  appendEntry(appendUpdateHeader(nil, "n", 1, 1, 0, time.Second), strings.Repeat("k", MaxPresenceKey+1), 1),
		"no count":  append(appendUpdateHeader(nil, "n", 1, 1, 0, time.Second), 1, 'k'),
		"bye":       append(appendPresHeader(nil, presBye, "n"), 1),
		"sync":      append(appendPresHeader(nil, presSync, "n"), 3, 'x'),
		"type":      appendPresHeader(nil, 9, "n"),
	} {
		if _, err := decodePresence(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := decodePresence([]byte{Version + 1, 1}); !errors.Is(err, ErrNewerVersion) {
		t.Fatal(err)
	}
}

// FuzzDecodeMessage: the relay decoder never panics, never takes bytes
// past the message, and what it decodes encodes back to a message that
// decodes the same.
func FuzzDecodeMessage(f *testing.F) {
	for _, rm := range relayed() {
		b, _ := appendMessage(nil, "node-1", rm)
		f.Add(b)
	}
	f.Add([]byte{Version + 1, 1})
	f.Add([]byte{Version, 1, 1, 'n', byte(tio.KindGroup), 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNewerVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		rm := tio.RelayMessage{Op: m.op, Target: m.target, Reason: m.reason}
		if m.op == tio.RelaySend {
			rm.Packet = &codec.Packet{Type: m.typ, Body: m.body}
		}
		again, err := appendMessage(nil, string(m.origin), rm)
		if err != nil {
			t.Fatalf("%+v does not encode: %v", m, err)
		}
		m2, err := decodeMessage(again)
		if err != nil || m2.op != m.op || !bytes.Equal(m2.origin, m.origin) || m2.target != m.target ||
			m2.typ != m.typ || !bytes.Equal(m2.body, m.body) || m2.reason != m.reason {
			t.Fatalf("% x decoded as %+v, re-encoded as % x, decoded as %+v, %v", b, m, again, m2, err)
		}
	})
}

// FuzzDecodePresence: the presence decoder never panics, and the encoding
// is canonical: what it accepts, the node's encoder writes byte for byte.
func FuzzDecodePresence(f *testing.F) {
	u := appendUpdateHeader(nil, "n1", 42, 7, flagReset, 1500*time.Millisecond)
	f.Add(appendEntry(appendEntry(u, "alice", 2), "bob", 0))
	f.Add(append(appendPresHeader(nil, presBye, "n1"), 0, 0, 0, 0, 0, 0, 0, 42))
	f.Add(append(appendPresHeader(nil, presSync, "n1"), 2, 'n', '2'))
	f.Add(append(appendPresHeader(nil, presSync, "n1"), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePresence(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNewerVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		var again []byte
		switch m.typ {
		case presUpdate:
			again = appendUpdateHeader(nil, string(m.origin), m.epoch, m.seq, m.flags, m.ttl)
			m.each(func(k []byte, n int32) { again = appendEntry(again, string(k), n) })
		case presBye:
			again = appendPresHeader(nil, presBye, string(m.origin))
			again = append(again, b[len(b)-8:]...)
		case presSync:
			again = append(appendPresHeader(nil, presSync, string(m.origin)), byte(len(m.want)))
			again = append(again, m.want...)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("% x decoded as %+v, encoded back as % x", b, m, again)
		}
	})
}

func TestRosterRoundTrip(t *testing.T) {
	u := appendUpdateHeader(nil, "n1", 42, 7, flagReset, time.Second)
	u = appendRosterEntry(u, "lobby", "alice", 2)
	u = appendRosterEntry(u, "lobby", "bob", 0)
	m, err := decodeRosters(u)
	if err != nil || m.typ != presUpdate || string(m.origin) != "n1" || m.epoch != 42 || m.seq != 7 || m.flags != flagReset || !m.rosters {
		t.Fatalf("%+v, %v", m, err)
	}
	var got []string
	m.eachRoster(func(r, k []byte, n int32) { got = append(got, string(r)+"/"+string(k)+"="+string(rune('0'+n))) })
	if strings.Join(got, ",") != "lobby/alice=2,lobby/bob=0" {
		t.Fatalf("entries %v", got)
	}
	if len(u) > len(appendUpdateHeader(nil, "n1", 42, 7, flagReset, time.Second))+rosterEntrySize("lobby", "alice")+rosterEntrySize("lobby", "bob") {
		t.Fatal("rosterEntrySize is not a bound")
	}
	hdr := func() []byte { return appendUpdateHeader(nil, "n", 1, 1, 0, time.Second) }
	for name, b := range map[string][]byte{
		"empty roster":  append(hdr(), 0, 1, 'm', 1),
		"empty member":  append(hdr(), 1, 'r', 0, 1),
		"long roster":   appendRosterEntry(hdr(), strings.Repeat("r", MaxPresenceKey+1), "m", 1),
		"long member":   appendRosterEntry(hdr(), "r", strings.Repeat("m", MaxPresenceKey+1), 1),
		"no member":     append(hdr(), 1, 'r'),
		"no count":      append(hdr(), 1, 'r', 1, 'm'),
		"user entry":    appendEntry(hdr(), "alice", 1), // a presence entry is not a roster entry
		"bye":           append(appendPresHeader(nil, presBye, "n"), 0, 0, 0, 0, 0, 0, 0, 1),
		"type":          appendPresHeader(nil, 9, "n"),
		"truncated hdr": appendPresHeader(nil, presUpdate, "n"),
	} {
		if _, err := decodeRosters(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := decodeRosters([]byte{Version + 1, 1}); !errors.Is(err, ErrNewerVersion) {
		t.Fatal(err)
	}
}

// FuzzDecodeRosters: the roster decoder never panics, and its encoding is
// canonical.
func FuzzDecodeRosters(f *testing.F) {
	u := appendUpdateHeader(nil, "n1", 42, 7, flagReset, 1500*time.Millisecond)
	f.Add(appendRosterEntry(appendRosterEntry(u, "r", "alice", 2), "r", "bob", 0))
	f.Add(append(appendPresHeader(nil, presSync, "n1"), 2, 'n', '2'))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeRosters(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNewerVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		var again []byte
		switch m.typ {
		case presUpdate:
			again = appendUpdateHeader(nil, string(m.origin), m.epoch, m.seq, m.flags, m.ttl)
			m.eachRoster(func(r, k []byte, n int32) { again = appendRosterEntry(again, string(r), string(k), n) })
		case presSync:
			again = append(appendPresHeader(nil, presSync, string(m.origin)), byte(len(m.want)))
			again = append(again, m.want...)
		default:
			t.Fatalf("type %d accepted", m.typ)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("% x decoded as %+v, encoded back as % x", b, m, again)
		}
	})
}
