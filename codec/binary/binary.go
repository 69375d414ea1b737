// Package binary is tio's custom TCP protocol, in the style of t-io's: a
// one-byte handshake, one-byte heartbeats, and length-prefixed packets with a
// type. docs/binary-protocol.md specifies the wire layout; in short, every
// frame starts with a tag byte:
//
//	0xA1                              handshake (client's first byte; the server answers 0xA1)
//	0xA2                              heartbeat (either side; a server answers each with one)
//	0xA3 type:u16 len:u32 body        packet (big-endian; len ≤ the configured maximum)
//	0xA4 code:u8                      close (either side; see the Close* codes)
//	0xA5 type:u16 id:u32 len:u32 body request: a packet whose reply is awaited (version 2)
//	0xA6 type:u16 id:u32 len:u32 body reply to the request with the same id (version 2)
//
// Any other tag, or a packet over the limit, closes the connection with a
// close frame and a counted reason.
package binary

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/tiogo/tio/codec"
)

// Tag bytes.
const (
	TagHandshake byte = 0xA1
	TagHeartbeat byte = 0xA2
	TagPacket    byte = 0xA3
	TagClose     byte = 0xA4
	TagRequest   byte = 0xA5 // version 2
	TagReply     byte = 0xA6 // version 2
)

// Version is the protocol version this codec speaks: 2 added requests and
// replies (TagRequest, TagReply), which version-1 peers never send.
const Version = 2

// heartbeat is a heartbeat frame, for Conn.Write (which copies it).
var heartbeat = [1]byte{TagHeartbeat}

// HeaderSize is the size of a packet's header: tag, type and length.
const HeaderSize = 7

// IDHeaderSize is the size of a request's or reply's header: tag, type,
// id and length.
const IDHeaderSize = 11

// Close codes carried by a close frame.
const (
	CloseNormal    byte = 0
	CloseGoingAway byte = 1
	CloseProtocol  byte = 2
	CloseTooBig    byte = 3
	ClosePolicy    byte = 4
	CloseInternal  byte = 5
)

// DefaultMaxBody bounds a packet's body unless Config says otherwise.
const DefaultMaxBody = 16 << 20

// Config configures the codec. The zero value is usable.
type Config struct {
	// MaxBody bounds a packet's body in bytes (default 16 MiB; zero keeps
	// the default, a negative value removes the limit, as in tio.Limits).
	MaxBody int
	// SilentHeartbeats stops a server from answering each heartbeat byte
	// with one (by default it answers, so that an idle client can tell a
	// live server from a dead one; the answers count toward the outbound
	// limit and the heartbeats toward the rate limit). A client never
	// answers.
	SilentHeartbeats bool
	// Client makes the codec the client side of the protocol: its decoder
	// opens the session (sends TagHandshake, see codec.Opener) and waits
	// for the server's answer.
	Client bool
}

// Codec is the binary protocol codec. Create it with New.
type Codec struct {
	cfg Config
}

// New returns a codec configured by cfg.
func New(cfg Config) *Codec {
	switch { // zero: the default; negative: no limit (as in tio.Limits)
	case cfg.MaxBody == 0:
		cfg.MaxBody = DefaultMaxBody
	case cfg.MaxBody < 0:
		cfg.MaxBody = math.MaxInt
	}
	return &Codec{cfg: cfg}
}

// Name implements codec.Codec.
func (*Codec) Name() string { return "binary" }

// Sniff implements codec.Sniffer: the protocol starts with the handshake byte.
func (*Codec) Sniff(first []byte) codec.Match {
	switch {
	case len(first) == 0:
		return codec.NeedMore
	case first[0] == TagHandshake:
		return codec.Matched
	}
	return codec.NoMatch
}

// NewDecoder implements codec.Codec.
func (c *Codec) NewDecoder() codec.Decoder {
	d := &decoder{cfg: &c.cfg}
	if c.cfg.Client {
		d.state = stClientHandshake
	}
	return d
}

// Encode implements codec.Codec: a packet, or, for a packet with an ID, a
// request or a reply.
func (c *Codec) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	if uint64(len(p.Body)) > 0xFFFFFFFF {
		return dst, fmt.Errorf("binary: body of %d bytes: %w", len(p.Body), codec.ErrTooBig)
	}
	if p.ID != 0 {
		tag := TagRequest
		if p.Reply {
			tag = TagReply
		}
		dst = append(dst, tag, byte(p.Type>>8), byte(p.Type))
		dst = binary.BigEndian.AppendUint32(dst, p.ID)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.Body)))
		return append(dst, p.Body...), nil
	}
	if p.Reply {
		return dst, fmt.Errorf("binary: a reply without an id: %w", codec.ErrUnsupported)
	}
	dst = append(dst, TagPacket, byte(p.Type>>8), byte(p.Type))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.Body)))
	return append(dst, p.Body...), nil
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(dst []byte) []byte { return append(dst, TagHeartbeat) }

// AppendHeartbeat implements codec.Heartbeater.
func (*Codec) AppendHeartbeat(dst []byte) []byte { return AppendHeartbeat(dst) }

// AppendClose appends a close frame with the given code.
func AppendClose(dst []byte, code byte) []byte { return append(dst, TagClose, code) }

const (
	stHandshake       uint8 = iota // server: waiting for the client's handshake byte
	stOpen                         // the session is up
	stClosed                       // a close frame went or came: nothing more is delivered
	stClientHandshake              // client: waiting for the server's answer
)

type decoder struct {
	cfg    *Config
	buf    []byte // body of a packet that did not arrive whole
	remain int    // body bytes still to come for buf
	id     uint32 // the id of the packet in buf, if it has one
	typ    codec.Type
	state  uint8
	reply  bool // the packet in buf is a reply
}

// Open implements codec.Opener for the client side: it sends the
// handshake byte.
func (d *decoder) Open(c codec.Conn) error {
	if d.state != stClientHandshake {
		return nil
	}
	return c.Write([]byte{TagHandshake})
}

// retainBuf is the largest body buffer a connection keeps between packets.
const retainBuf = 64 << 10

// Decode implements codec.Decoder.
func (d *decoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	if len(in) == 0 {
		return 0, false, nil
	}
	switch d.state {
	case stHandshake:
		if in[0] != TagHandshake {
			return d.fail(c, CloseProtocol, codec.ErrHandshake, fmt.Sprintf("first byte %#x is not the handshake", in[0]))
		}
		d.state = stOpen
		_ = c.Write([]byte{TagHandshake})
		c.Ready()
		return 1, false, nil
	case stClientHandshake:
		if in[0] != TagHandshake {
			return d.fail(c, CloseProtocol, codec.ErrHandshake, fmt.Sprintf("the server answered %#x to the handshake", in[0]))
		}
		d.state = stOpen
		c.Ready()
		return 1, false, nil
	case stClosed:
		return len(in), false, codec.ErrPeerClosed
	}
	if d.remain > 0 {
		take := min(len(in), d.remain)
		d.buf = append(d.buf, in[:take]...)
		if d.remain -= take; d.remain > 0 {
			return take, false, nil
		}
		// The packet's Body may alias buf until the server calls Decode
		// again (see the decoding contract), and nothing is appended to buf
		// before that: empty it now, or drop it if a large body grew it, so
		// that it is garbage once the server is done with the packet rather
		// than when the peer next sends something.
		p.Type, p.Body, p.ID, p.Reply = d.typ, d.buf, d.id, d.reply
		if cap(d.buf) > retainBuf {
			d.buf = nil
		} else {
			d.buf = d.buf[:0]
		}
		return take, true, nil
	}
	switch in[0] {
	case TagHeartbeat:
		c.Control()
		if !d.cfg.SilentHeartbeats && !d.cfg.Client {
			_ = c.Write(heartbeat[:]) // copied: no allocation per answer
		}
		return 1, false, nil
	case TagClose:
		if len(in) < 2 {
			return 0, false, nil
		}
		d.state = stClosed
		return 2, false, codec.ErrPeerClosed
	case TagPacket, TagRequest, TagReply:
	default:
		return d.fail(c, CloseProtocol, codec.ErrMalformed, fmt.Sprintf("unknown tag %#x", in[0]))
	}
	hsize, id, reply := HeaderSize, uint32(0), false
	if in[0] != TagPacket {
		hsize, reply = IDHeaderSize, in[0] == TagReply
	}
	if len(in) < hsize {
		return 0, false, nil
	}
	typ := codec.Type(binary.BigEndian.Uint16(in[1:3]))
	if hsize == IDHeaderSize {
		if id = binary.BigEndian.Uint32(in[3:7]); id == 0 {
			return d.fail(c, CloseProtocol, codec.ErrMalformed, "a request or reply with id 0")
		}
	}
	size := binary.BigEndian.Uint32(in[hsize-4 : hsize])
	if uint64(size) > uint64(d.cfg.MaxBody) {
		return d.fail(c, CloseTooBig, codec.ErrTooBig, fmt.Sprintf("packet body of %d bytes over the limit of %d", size, d.cfg.MaxBody))
	}
	// size ≤ MaxBody, an int, but HeaderSize + size may not fit one (on
	// 32-bit platforms, with a MaxBody near the top of the range): compare
	// what has arrived of the body with size instead.
	if uint64(len(in)-hsize) < uint64(size) {
		// Not all here: consume the header and collect the body as it comes.
		d.typ, d.remain, d.id, d.reply = typ, int(size), id, reply
		if d.buf == nil {
			d.buf = make([]byte, 0, min(int(size), 4096))
		}
		return hsize, false, nil
	}
	total := hsize + int(size) // ≤ len(in)
	p.Type, p.Body, p.ID, p.Reply = typ, in[hsize:total], id, reply
	return total, true, nil
}

// Partial implements codec.Partial: a packet's body is being collected.
func (d *decoder) Partial() bool { return d.remain > 0 }

func (d *decoder) fail(c codec.Conn, code byte, sentinel error, msg string) (int, bool, error) {
	d.closeWith(c, code)
	return 0, false, fmt.Errorf("binary: %s: %w", msg, sentinel)
}

func (d *decoder) closeWith(c codec.Conn, code byte) {
	if d.state == stClosed {
		return
	}
	d.state = stClosed
	_ = c.WriteLast([]byte{TagClose, code})
}

// Farewell implements codec.Farewell with a close frame whose code matches why.
func (d *decoder) Farewell(c codec.Conn, why error) {
	if d.state == stHandshake || d.state == stClientHandshake {
		d.state = stClosed
		return
	}
	code := CloseNormal
	switch {
	case why == nil:
	case errors.Is(why, codec.ErrGoingAway):
		code = CloseGoingAway
	case errors.Is(why, codec.ErrTooBig):
		code = CloseTooBig
	case errors.Is(why, codec.ErrProtocol), errors.Is(why, codec.ErrMalformed), errors.Is(why, codec.ErrInvalidData):
		code = CloseProtocol
	case errors.Is(why, codec.ErrPolicy):
		code = ClosePolicy
	case errors.Is(why, codec.ErrInternal):
		code = CloseInternal
	}
	d.closeWith(c, code)
}
