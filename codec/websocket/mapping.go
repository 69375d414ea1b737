package websocket

import (
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
	// An error wrapping a codec sentinel closes the connection with the
	// matching close code (codec.ErrUnsupported → 1003, codec.ErrInvalidData → 1007).
	Decode(text bool, payload []byte, p *codec.Packet) error
	// Encode says how p is sent: as a text or a binary message whose payload
	// is head followed by p.Body. head must not be modified by the caller.
	Encode(p *codec.Packet) (text bool, head []byte, err error)
}

// TypePrefix is the default mapping, the one t-io's WebSocket example uses:
// the first byte of a binary message is the packet type and the rest is the
// body; a text message is a packet of type Text (TypeText when zero) whose
// body is the whole text. An empty binary message carries no type and closes
// the connection with 1003. Encoding reverses this: a packet of type Text
// becomes a text message, a packet of type 0..255 a binary message that starts
// with its type byte; other types cannot be encoded.
type TypePrefix struct {
	Text codec.Type
}

func (m TypePrefix) text() codec.Type {
	if m.Text == 0 {
		return TypeText
	}
	return m.Text
}

// typeBytes holds every one-byte type, so that Encode returns a head without
// allocating.
var typeBytes = func() (b [256]byte) {
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// Decode implements [Mapping].
func (m TypePrefix) Decode(text bool, payload []byte, p *codec.Packet) error {
	if text {
		p.Type, p.Body = m.text(), payload
		return nil
	}
	if len(payload) == 0 {
		return fmt.Errorf("websocket: empty binary message has no packet type: %w", codec.ErrUnsupported)
	}
	p.Type, p.Body = codec.Type(payload[0]), payload[1:]
	return nil
}

// Encode implements [Mapping].
func (m TypePrefix) Encode(p *codec.Packet) (bool, []byte, error) {
	if p.Type == m.text() {
		return true, nil, nil
	}
	if p.Type > 0xFF {
		return false, nil, fmt.Errorf("websocket: type %#x does not fit the one-byte prefix: %w", p.Type, codec.ErrUnsupported)
	}
	return false, typeBytes[p.Type : p.Type+1], nil
}

// Raw maps whole messages without looking inside them: a text message is a
// packet of type Text (TypeText when zero), a binary message one of type
// Binary (TypeBinary when zero), and the body is the whole payload. Encoding
// sends a packet of type Text as a text message and any other packet as a
// binary message holding its body. The echo example uses it.
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

// Encode implements [Mapping].
func (m Raw) Encode(p *codec.Packet) (bool, []byte, error) {
	t := m.Text
	if t == 0 {
		t = TypeText
	}
	return p.Type == t, nil, nil
}
