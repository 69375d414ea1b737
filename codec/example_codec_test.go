package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// lineCodec is a user protocol: newline-terminated text lines, each a packet
// of type 1, on connections whose first byte is '#'. Lines are bounded.
type lineCodec struct{ max int }

func (lineCodec) Name() string { return "line" }

func (lineCodec) Sniff(first []byte) codec.Match {
	if len(first) == 0 {
		return codec.NeedMore
	}
	if first[0] == '#' {
		return codec.Matched
	}
	return codec.NoMatch
}

func (l lineCodec) NewDecoder() codec.Decoder { return &lineDecoder{max: l.max} }

// Encode is stateless: its bytes can be shared by every line connection.
func (lineCodec) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	if bytes.IndexByte(p.Body, '\n') >= 0 {
		return dst, fmt.Errorf("line: body contains a newline: %w", codec.ErrUnsupported)
	}
	return append(append(dst, p.Body...), '\n'), nil
}

type lineDecoder struct {
	max     int
	greeted bool
}

func (d *lineDecoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	if !d.greeted { // the '#' that selected this codec is the handshake
		d.greeted = true
		c.Ready()
		return 1, false, nil
	}
	i := bytes.IndexByte(in, '\n')
	switch {
	case i > d.max || i < 0 && len(in) > d.max: // however the line arrives
		_ = c.Write([]byte("ERR line too long\n")) // the protocol's farewell
		return 0, false, fmt.Errorf("line: over %d bytes: %w", d.max, codec.ErrTooBig)
	case i < 0:
		return 0, false, nil // need more bytes
	}
	p.Type, p.Body = 1, in[:i] // no copy: valid until the next Decode
	return i + 1, true, nil
}

// fakeConn stands in for a channel, to drive a decoder by hand.
type fakeConn struct{ out bytes.Buffer }

func (f *fakeConn) Write(b []byte) error     { f.out.Write(b); return nil }
func (f *fakeConn) WriteLast(b []byte) error { return f.Write(b) }
func (*fakeConn) SetValue(key, value any)    {}
func (*fakeConn) Value(key any) any          { return nil }
func (*fakeConn) Ready()                     {}
func (*fakeConn) Control()                   {}
func (*fakeConn) SetVariant(int)             {}
func (*fakeConn) SetEncoder(codec.Encoder)   {}

// Example_codec shows a user protocol implementing codec.Codec and
// codec.Sniffer, and the decoding loop a server runs over a connection's
// buffered bytes: packets split across reads and several packets in one read
// both work. Register it with tio.WithCodecs(websocket.New(...), lineCodec{...}).
func Example_codec() {
	var cd codec.Codec = lineCodec{max: 64}
	dec := cd.NewDecoder()
	conn := &fakeConn{}
	var buffered []byte
	for _, read := range []string{"#hel", "lo\nwor", "ld\nand more\n"} {
		buffered = append(buffered, read...)
		for {
			var p codec.Packet
			n, ok, err := dec.Decode(conn, buffered, &p)
			if err != nil {
				fmt.Println("close:", err)
				return
			}
			if ok {
				out, _ := cd.Encode(nil, &p)
				fmt.Printf("packet type %d %q -> wire %q\n", p.Type, p.Body, out)
			}
			buffered = buffered[n:]
			if !ok && n == 0 {
				break // wait for the next read
			}
		}
	}
	_, _, err := dec.Decode(conn, bytes.Repeat([]byte("x"), 65), new(codec.Packet))
	fmt.Println(errors.Is(err, codec.ErrTooBig), conn.out.String())
	// Output:
	// packet type 1 "hello" -> wire "hello\n"
	// packet type 1 "world" -> wire "world\n"
	// packet type 1 "and more" -> wire "and more\n"
	// true ERR line too long
}

// The example codec keeps the decoding contract however its input is split:
// codectest decodes each input in one read, byte by byte and in uneven
// reads, and compares.
func TestLineCodecContract(t *testing.T) {
	for _, in := range []string{"#one\ntwo\n", "#a line over the limit\n", "#\n\n", "#no newline", "#ok\nERR?\n"} {
		codectest.Splits(t, lineCodec{max: 10}.NewDecoder, []byte(in), []byte{1, 3}, nil)
	}
}

// FuzzLineCodec runs the same check on inputs the fuzzer makes up.
func FuzzLineCodec(f *testing.F) {
	f.Add([]byte("#one\ntwo\n"), []byte{1, 3})
	f.Add([]byte("#a line over the limit\n"), []byte{})
	f.Fuzz(func(t *testing.T, input, sizes []byte) {
		codectest.Splits(t, lineCodec{max: 10}.NewDecoder, input, sizes, nil)
	})
}
