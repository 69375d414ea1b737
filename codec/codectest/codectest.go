// Package codectest checks a [codec.Decoder] against the decoding contract
// the way tio's server drives it: bytes arrive in reads of any size, and the
// decoder is called on everything buffered until it asks for more or fails.
// However the input is split, a decoder must give the same packets, write
// the same bytes and end with the same error.
//
// Use it in the tests and fuzz targets of a codec of your own:
//
//	func FuzzDecode(f *testing.F) {
//		f.Add([]byte("#hello\n"), []byte{1, 2})
//		f.Fuzz(func(t *testing.T, input, sizes []byte) {
//			codectest.Splits(t, myCodec.NewDecoder, input, sizes, nil)
//		})
//	}
package codectest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/tiogo/tio/codec"
)

// Conn is a [codec.Conn] that records what a decoder writes and how often it
// calls Ready.
type Conn struct {
	Written  []byte        // everything the decoder wrote, in order
	Readies  int           // calls of Ready
	Variant  int           // the last variant set with SetVariant
	Controls int           // calls of Control
	Encoder  codec.Encoder // the encoder set with SetEncoder, if any
	values   map[any]any
}

// Write implements codec.Conn.
func (c *Conn) Write(b []byte) error { c.Written = append(c.Written, b...); return nil }

// WriteLast implements codec.Conn like Write.
func (c *Conn) WriteLast(b []byte) error { return c.Write(b) }

// SetValue implements codec.Conn.
func (c *Conn) SetValue(k, v any) {
	if c.values == nil {
		c.values = make(map[any]any)
	}
	c.values[k] = v
}

// Value implements codec.Conn.
func (c *Conn) Value(k any) any { return c.values[k] }

// Ready implements codec.Conn.
func (c *Conn) Ready() { c.Readies++ }

// Control implements codec.Conn: it counts in Controls.
func (c *Conn) Control() { c.Controls++ }

// SetVariant implements codec.Conn: it records v in Variant.
func (c *Conn) SetVariant(v int) { c.Variant = v }

// SetEncoder implements codec.Conn: it records e in Encoder.
func (c *Conn) SetEncoder(e codec.Encoder) { c.Encoder = e }

// Packet is a decoded packet, its body copied.
type Packet struct {
	Type  codec.Type
	Body  string
	ID    uint32 // a request's or reply's correlation id
	Reply bool
}

// Result is everything observable about decoding one input.
type Result struct {
	Packets []Packet
	Written []byte // what the decoder wrote to its connection
	Err     error  // the codec sentinel of the error that ended decoding, or nil
	Readies int    // calls of Ready: 0, or 1 once the handshake completed
}

// Equal reports whether r and o are the same.
func (r Result) Equal(o Result) bool {
	if len(r.Packets) != len(o.Packets) || r.Err != o.Err || r.Readies != o.Readies || !bytes.Equal(r.Written, o.Written) {
		return false
	}
	for i := range r.Packets {
		if r.Packets[i] != o.Packets[i] {
			return false
		}
	}
	return true
}

// String describes r briefly.
func (r Result) String() string {
	return fmt.Sprintf("%d packets, %d bytes written (%.40q), err %v, ready %d", len(r.Packets), len(r.Written), r.Written, r.Err, r.Readies)
}

var sentinels = []error{
	codec.ErrProtocol, codec.ErrMalformed, codec.ErrInvalidData, codec.ErrTooBig, codec.ErrHandshake, codec.ErrRefused,
	codec.ErrPeerClosed, codec.ErrGoingAway, codec.ErrPolicy, codec.ErrInternal, codec.ErrUnsupported,
}

// Sentinel returns the codec sentinel error that err wraps, or nil.
func Sentinel(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// Check examines a decoder after a call of Decode that returned no error:
// buffered is what the server still holds for the connection (the input
// past the n bytes consumed). It is for the invariants of one decoder (its
// buffers within its limits, what it may leave unconsumed when it waits for
// more) and reports through t.
type Check func(t testing.TB, d codec.Decoder, buffered []byte, n int, ok bool)

// Decode feeds input to d in reads of the sizes next returns (at least 1 and
// at most what is left), as the server does: after each read, d is called on
// everything buffered until it returns a packet-less, byte-less answer (it
// needs more) or an error. It fails t if d breaks the contract:
//
//   - it consumes a negative count or more bytes than it was given;
//   - it returns a packet without consuming anything;
//   - it modifies bytes it did not consume (without failing);
//   - it fails with an error that wraps none of the codec sentinels (the
//     server could not record why it closed the connection);
//   - it calls Ready more than once.
//
// check, if not nil, runs after every call that returned no error.
func Decode(t testing.TB, d codec.Decoder, input []byte, next func() int, check Check) (r Result) {
	t.Helper()
	c := &Conn{}
	var pending []byte
	defer func() { r.Written, r.Readies = c.Written, c.Readies }()
	for fed := 0; fed < len(input); {
		size := min(max(next(), 1), len(input)-fed)
		pending = append(pending, input[fed:fed+size]...)
		fed += size
		for len(pending) > 0 {
			before := append([]byte(nil), pending...)
			var p codec.Packet
			n, ok, err := d.Decode(c, pending, &p)
			switch {
			case n < 0 || n > len(pending):
				t.Fatalf("codectest: Decode consumed %d of %d bytes", n, len(pending))
			case ok && n == 0:
				t.Fatal("codectest: Decode returned a packet without consuming anything")
			case c.Readies > 1:
				t.Fatalf("codectest: Ready called %d times", c.Readies)
			}
			if err != nil {
				if r.Err = Sentinel(err); r.Err == nil {
					t.Fatalf("codectest: Decode error %q wraps no codec sentinel", err)
				}
				return r
			}
			if !bytes.Equal(pending[n:], before[n:]) {
				t.Fatal("codectest: Decode modified bytes it did not consume")
			}
			if ok {
				r.Packets = append(r.Packets, Packet{Type: p.Type, Body: string(p.Body), ID: p.ID, Reply: p.Reply})
				if rel, is := d.(codec.Releaser); is {
					rel.Release() // as the server does once the packet is handled
				}
			}
			pending = pending[n:]
			if check != nil {
				check(t, d, pending, n, ok)
			}
			if n == 0 && !ok {
				break // wait for the next read
			}
		}
		pending = append([]byte(nil), pending...) // the next read comes in a new buffer
	}
	return r
}

// Splits decodes input with a new decoder three ways: in one read, one byte
// per read, and in reads of the sizes in sizes (each plus one, in turn; one
// read if sizes is empty). It fails t if the decoder breaks the contract
// (see Decode) or if the three results differ, and returns the first.
func Splits(t testing.TB, newDecoder func() codec.Decoder, input, sizes []byte, check Check) Result {
	t.Helper()
	whole := Decode(t, newDecoder(), input, func() int { return len(input) }, check)
	if bytewise := Decode(t, newDecoder(), input, func() int { return 1 }, check); !whole.Equal(bytewise) {
		t.Fatalf("codectest: in one read: %v\nbyte by byte: %v", whole, bytewise)
	}
	i := 0
	chunked := Decode(t, newDecoder(), input, func() int {
		if len(sizes) == 0 {
			return len(input)
		}
		i++
		return int(sizes[(i-1)%len(sizes)]) + 1
	}, check)
	if !whole.Equal(chunked) {
		t.Fatalf("codectest: in one read: %v\nin reads of %v: %v", whole, sizes, chunked)
	}
	return whole
}
