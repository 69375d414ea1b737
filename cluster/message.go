package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Version is the version of the relay and presence message formats this
// package writes and reads (docs/cluster.md). A node drops a message of a
// newer version, counting it in Stats.NewerVersion: a change of format is
// a cluster-wide upgrade.
const Version = 1

// MaxNodeID bounds the length of a node id.
const MaxNodeID = 64

// Errors of decoding a message received from NATS. Both are counted, never
// returned to an application.
var (
	// ErrNewerVersion: the message's version is newer than Version.
	ErrNewerVersion = errors.New("cluster: message of a newer version")
	// ErrMalformed: the message cannot be decoded.
	ErrMalformed = errors.New("cluster: malformed message")
)

// message is a decoded relay message. Its byte slices point into the
// buffer it was decoded from.
type message struct {
	op     tio.RelayOp
	origin []byte // the publishing node's id
	target tio.Target
	typ    codec.Type     // RelaySend
	body   []byte         // RelaySend
	reason channel.Reason // RelayClose
	text   []byte         // RelayClose: the farewell's words, or none
}

// MaxCloseText bounds the words of a relayed close (tio.CloseText): a
// publisher keeps the first MaxCloseText bytes, cut at a character
// boundary; a longer text received is malformed. A WebSocket close frame
// holds 123 bytes of them.
const MaxCloseText = 1024

// appendMessage appends the wire form of m, published by node origin, to b:
//
//	version (1 byte) | op (1 byte: 1 send, 2 close) |
//	origin's length (uvarint) | origin |
//	target (tio's binary encoding of a Target) |
//	send:  packet type (2 bytes, big-endian) | body (the rest)
//	close: reason (1 byte) | the farewell's words (the rest, UTF-8, at most MaxCloseText bytes)
func appendMessage(b []byte, origin string, m tio.RelayMessage) ([]byte, error) {
	b = append(b, Version, byte(m.Op))
	b = binary.AppendUvarint(b, uint64(len(origin)))
	b = append(b, origin...)
	b, err := m.Target.AppendBinary(b)
	if err != nil {
		return b, err
	}
	switch m.Op {
	case tio.RelaySend:
		if m.Packet == nil {
			return b, fmt.Errorf("cluster: relay send without a packet")
		}
		b = binary.BigEndian.AppendUint16(b, uint16(m.Packet.Type))
		b = append(b, m.Packet.Body...)
	case tio.RelayClose:
		b = append(b, byte(m.Reason))
		b = append(b, cutText(m.Text, MaxCloseText)...)
	default:
		return b, fmt.Errorf("cluster: unknown relay op %d", m.Op)
	}
	return b, nil
}

// decodeMessage decodes a relay message. It allocates nothing but the
// target's key (at most tio.MaxTargetKey bytes, and never more than b
// holds); the body and origin point into b.
func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) < 2 {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] > Version {
		return m, fmt.Errorf("%w: version %d", ErrNewerVersion, b[0])
	}
	if b[0] != Version {
		return m, fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	m.op = tio.RelayOp(b[1])
	if m.op != tio.RelaySend && m.op != tio.RelayClose {
		return m, fmt.Errorf("%w: op %d", ErrMalformed, b[1])
	}
	origin, n, err := nodeID(b[2:])
	if err != nil {
		return m, err
	}
	m.origin = origin
	rest := b[2+n:]
	t, n, err := tio.DecodeTarget(rest)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if k := t.Kind(); k == tio.KindID || k == tio.KindIDs {
		return m, fmt.Errorf("%w: target %v is not relayed", ErrMalformed, k)
	}
	m.target = t
	rest = rest[n:]
	switch m.op {
	case tio.RelaySend:
		if len(rest) < 2 {
			return m, fmt.Errorf("%w: truncated packet", ErrMalformed)
		}
		m.typ = codec.Type(binary.BigEndian.Uint16(rest))
		m.body = rest[2:]
	case tio.RelayClose:
		if len(rest) < 1 || len(rest) > 1+MaxCloseText || !utf8.Valid(rest[1:]) {
			return m, fmt.Errorf("%w: close of %d bytes", ErrMalformed, len(rest))
		}
		m.reason = channel.Reason(rest[0])
		if len(rest) > 1 {
			m.text = rest[1:]
		}
		if int(m.reason) >= channel.NumReasons || m.reason == channel.ReasonNone {
			// A reason this node does not know (a newer node's) closes
			// all the same.
			m.reason = channel.ReasonClosedByApp
		}
	}
	return m, nil
}

// cutText returns the first bytes of s, at most n, ending at a character
// boundary (invalid UTF-8 becomes U+FFFD first).
func cutText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// nodeID decodes a node id (uvarint length, 1 to MaxNodeID bytes) at the
// start of b.
func nodeID(b []byte) ([]byte, int, error) {
	l, w := binary.Uvarint(b)
	if w <= 0 || l == 0 || l > MaxNodeID || w != 1 {
		return nil, 0, fmt.Errorf("%w: node id", ErrMalformed)
	}
	if uint64(len(b)-w) < l {
		return nil, 0, fmt.Errorf("%w: truncated node id", ErrMalformed)
	}
	return b[w : w+int(l)], w + int(l), nil
}
