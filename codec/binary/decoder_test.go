package binary

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// open returns a decoder past its handshake.
func open(t *testing.T, cfg Config) (*decoder, *codectest.Conn) {
	t.Helper()
	d := New(cfg).NewDecoder().(*decoder)
	c := &codectest.Conn{}
	if n, _, err := d.Decode(c, []byte{TagHandshake}, &codec.Packet{}); n != 1 || err != nil {
		t.Fatalf("handshake: n %d, err %v", n, err)
	}
	return d, c
}

func header(typ uint16, size uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{TagPacket, byte(typ >> 8), byte(typ)}, size)
}

// TestBodyBufferReleased: once a body collected in the decoder's buffer is
// delivered, the buffer is emptied for the next packet, or dropped if the
// body grew it past retainBuf, at once: not at the next Decode, which may
// come only when the peer next speaks.
func TestBodyBufferReleased(t *testing.T) {
	d, c := open(t, Config{})
	for _, tc := range []struct {
		size    int
		dropped bool
	}{{200 << 10, true}, {3000, false}, {4 << 20, true}} {
		body := bytes.Repeat([]byte{'x'}, tc.size)
		in := append(header(1, uint32(tc.size)), body[:100]...)
		var p codec.Packet
		if n, ok, err := d.Decode(c, in, &p); n != HeaderSize || ok || err != nil {
			t.Fatalf("header: n %d, ok %v, err %v", n, ok, err)
		}
		if n, ok, err := d.Decode(c, in[HeaderSize:], &p); n != 100 || ok || err != nil {
			t.Fatalf("first bytes: n %d, ok %v, err %v", n, ok, err)
		}
		if n, ok, err := d.Decode(c, body[100:], &p); n != tc.size-100 || !ok || err != nil || !bytes.Equal(p.Body, body) {
			t.Fatalf("rest: n %d, ok %v, err %v, %d bytes delivered", n, ok, err, len(p.Body))
		}
		switch {
		case tc.dropped && d.buf != nil:
			t.Errorf("%d-byte body: the decoder still holds a buffer of %d bytes after delivering", tc.size, cap(d.buf))
		case !tc.dropped && (len(d.buf) != 0 || cap(d.buf) == 0 || cap(d.buf) > retainBuf):
			t.Errorf("%d-byte body: buffer of len %d, cap %d after delivering, want an empty one to reuse", tc.size, len(d.buf), cap(d.buf))
		}
	}
}

// TestLengthsDoNotOverflow: with MaxBody at the top of the int range, a
// header announcing a body of that size is consumed and its body awaited;
// the length arithmetic must not wrap (on 32-bit platforms HeaderSize plus
// such a size does not fit an int). Run it with GOARCH=386 too.
func TestLengthsDoNotOverflow(t *testing.T) {
	d, c := open(t, Config{MaxBody: math.MaxInt})
	size := uint32(min(uint64(math.MaxInt), math.MaxUint32))
	in := append(header(7, size), "some of the body"...)
	var p codec.Packet
	n, ok, err := d.Decode(c, in, &p)
	if n != HeaderSize || ok || err != nil || !d.Partial() || uint64(d.remain) != uint64(size) {
		t.Fatalf("n %d, ok %v, err %v, remain %d; want the header consumed and %d bytes awaited", n, ok, err, d.remain, size)
	}
	if n, ok, err := d.Decode(c, in[HeaderSize:], &p); n != len(in)-HeaderSize || ok || err != nil {
		t.Fatalf("body: n %d, ok %v, err %v", n, ok, err)
	}

	// Every size a header can announce, against a MaxBody of MaxInt: a
	// body over the limit is refused, never sliced with a wrapped length.
	for _, size := range []uint32{math.MaxInt32 - HeaderSize + 1, math.MaxInt32, math.MaxInt32 + 1, math.MaxUint32} {
		d, c := open(t, Config{MaxBody: math.MaxInt})
		n, ok, err := d.Decode(c, header(1, size), &p)
		switch {
		case uint64(size) > uint64(math.MaxInt):
			if err == nil {
				t.Errorf("size %#x over MaxBody %#x: n %d, ok %v, no error", size, math.MaxInt, n, ok)
			}
		case n != HeaderSize || ok || err != nil:
			t.Errorf("size %#x: n %d, ok %v, err %v", size, n, ok, err)
		}
	}
}
