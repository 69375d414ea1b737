package websocket

import (
	"encoding/binary"
	"fmt"

	"github.com/tiogo/tio/codec"
)

// Packet types used by the built-in mappings for whole messages. They lie
// outside the one-byte range, so they never collide with a type carried in the
// first byte of a binary message.
const (
	// TypeText is the default packet type of a text message.
	TypeText codec.Type = 0x100
	// TypeBinary is the packet type of a binary message under [Raw].
	TypeBinary codec.Type = 0x101
)

// Mapping converts between WebSocket messages and packets. Implementations
// must be safe for concurrent use and must not allocate per message if they
// want the codec to stay allocation-free.
type Mapping interface {
	// Decode maps a whole message to a packet. p.Body may alias payload.
	// The codec clears p.ID and p.Reply before the call: a mapping that
	// carries correlation ids sets them. An error wrapping a codec
	// sentinel closes the connection with the matching close code
	// (codec.ErrUnsupported → 1003, codec.ErrInvalidData → 1007).
	Decode(text bool, payload []byte, p *codec.Packet) error
	// Encode says how p is sent: as a text or a binary message whose payload
	// is head followed by p.Body. The head is returned by value, so that one
	// made per packet (a request's id) costs no allocation. A packet the
	// mapping cannot express (one with an ID it has no room for, say)
	// fails with an error wrapping codec.ErrUnsupported.
	Encode(p *codec.Packet) (text bool, head Head, err error)
}

// MaxHead is the most bytes a [Head] holds.
const MaxHead = 15

// Head is the bytes a [Mapping] puts before a packet's body in a message:
// at most MaxHead of them, held by value.
type Head struct {
	b [MaxHead]byte
	n uint8
}

// MakeHead returns a head holding b; bytes past MaxHead are dropped.
func MakeHead(b ...byte) Head {
	var h Head
	h.n = uint8(copy(h.b[:], b))
	return h
}

// Bytes returns the head's bytes (they point into h).
func (h *Head) Bytes() []byte { return h.b[:h.n] }

// Len returns the number of bytes in the head.
func (h Head) Len() int { return int(h.n) }

// TypePrefix is the default mapping, the one t-io's WebSocket example uses:
// the first byte of a binary message is the packet type and the rest is the
// body; a text message is a packet of type Text (TypeText when zero) whose
// body is the whole text. An empty binary message carries no type and closes
// the connection with 1003. Encoding reverses this: a packet of type Text
// becomes a text message, a packet of type 0..255 a binary message that starts
// with its type byte; other types cannot be encoded.
//
// Requests and replies (codec.Packet.ID, t-io's synSend) are binary
// messages with a prefix of their own, so the types 0xFE and 0xFF are
// reserved: a plain packet of either cannot be encoded, and a binary
// message that starts with either is a request or a reply:
//
//	0xFE type:u8 id:u32 body…   a request (id ≠ 0, big-endian)
//	0xFF type:u8 id:u32 body…   the reply to the request with that id
//
// The type byte after the prefix may be any of 0..255. A request or reply
// whose head is short or whose id is 0 closes the connection with 1007;
// a packet with an ID whose type is over 0xFF (the text type among them)
// cannot be encoded.
type TypePrefix struct {
	Text codec.Type
}

func (m TypePrefix) text() codec.Type {
	if m.Text == 0 {
		return TypeText
	}
	return m.Text
}

// The prefixes of requests and replies under TypePrefix, and the size of
// their heads.
const (
	PrefixRequest byte = 0xFE
	PrefixReply   byte = 0xFF
	idHeadSize         = 6 // prefix, type, id
)

// Decode implements [Mapping].
func (m TypePrefix) Decode(text bool, payload []byte, p *codec.Packet) error {
	if text {
		p.Type, p.Body = m.text(), payload
		return nil
	}
	if len(payload) == 0 {
		return fmt.Errorf("websocket: empty binary message has no packet type: %w", codec.ErrUnsupported)
	}
	if b := payload[0]; b == PrefixRequest || b == PrefixReply {
		if len(payload) < idHeadSize {
			return fmt.Errorf("websocket: a request or reply of %d bytes has no room for its type and id: %w", len(payload), codec.ErrInvalidData)
		}
		id := binary.BigEndian.Uint32(payload[2:6])
		if id == 0 {
			return fmt.Errorf("websocket: a request or reply with id 0: %w", codec.ErrInvalidData)
		}
		p.Type, p.ID, p.Reply, p.Body = codec.Type(payload[1]), id, b == PrefixReply, payload[idHeadSize:]
		return nil
	}
	p.Type, p.Body = codec.Type(payload[0]), payload[1:]
	return nil
}

// Encode implements [Mapping].
func (m TypePrefix) Encode(p *codec.Packet) (bool, Head, error) {
	if p.ID != 0 {
		if p.Type > 0xFF {
			return false, Head{}, fmt.Errorf("websocket: a request or reply of type %#x does not fit the one-byte type: %w", p.Type, codec.ErrUnsupported)
		}
		h := Head{n: idHeadSize}
		h.b[0], h.b[1] = PrefixRequest, byte(p.Type)
		if p.Reply {
			h.b[0] = PrefixReply
		}
		binary.BigEndian.PutUint32(h.b[2:6], p.ID)
		return false, h, nil
	}
	switch {
	case p.Reply:
		return false, Head{}, fmt.Errorf("websocket: a reply without an id: %w", codec.ErrUnsupported)
	case p.Type == m.text():
		return true, Head{}, nil
	case p.Type > 0xFF:
		return false, Head{}, fmt.Errorf("websocket: type %#x does not fit the one-byte prefix: %w", p.Type, codec.ErrUnsupported)
	case byte(p.Type) == PrefixRequest || byte(p.Type) == PrefixReply:
		return false, Head{}, fmt.Errorf("websocket: type %#x is reserved for requests and replies under TypePrefix: %w", p.Type, codec.ErrUnsupported)
	}
	return false, Head{b: [MaxHead]byte{byte(p.Type)}, n: 1}, nil
}

// Raw maps whole messages without looking inside them: a text message is a
// packet of type Text (TypeText when zero), a binary message one of type
// Binary (TypeBinary when zero), and the body is the whole payload. Encoding
// sends a packet of type Text as a text message and any other packet as a
// binary message holding its body; it cannot carry requests and replies.
// The echo example uses it.
type Raw struct {
	Text, Binary codec.Type
}

// Decode implements [Mapping].
func (m Raw) Decode(text bool, payload []byte, p *codec.Packet) error {
	p.Body = payload
	switch {
	case text && m.Text != 0:
		p.Type = m.Text
	case text:
		p.Type = TypeText
	case m.Binary != 0:
		p.Type = m.Binary
	default:
		p.Type = TypeBinary
	}
	return nil
}

// Encode implements [Mapping]. Raw has no room for a correlation id: a
// packet with one cannot be encoded.
func (m Raw) Encode(p *codec.Packet) (bool, Head, error) {
	if p.ID != 0 || p.Reply {
		return false, Head{}, fmt.Errorf("websocket: Raw carries no request ids: %w", codec.ErrUnsupported)
	}
	t := m.Text
	if t == 0 {
		t = TypeText
	}
	return p.Type == t, Head{}, nil
}
