package binary

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/tiogo/tio/codec"
)

// fakeConn is a codec.Conn that records what the decoder writes.
type fakeConn struct {
	out    []byte
	values map[any]any
	ready  int
}

func (c *fakeConn) Write(b []byte) error { c.out = append(c.out, b...); return nil }
func (c *fakeConn) SetValue(k, v any) {
	if c.values == nil {
		c.values = make(map[any]any)
	}
	c.values[k] = v
}
func (c *fakeConn) Value(k any) any { return c.values[k] }
func (c *fakeConn) Ready()          { c.ready++ }

const fuzzMaxBody = 300

var sentinels = []error{
	codec.ErrProtocol, codec.ErrMalformed, codec.ErrInvalidData, codec.ErrTooBig, codec.ErrHandshake,
	codec.ErrPeerClosed, codec.ErrGoingAway, codec.ErrPolicy, codec.ErrInternal, codec.ErrUnsupported,
}

// sentinelOf returns the codec sentinel that err wraps, or nil.
func sentinelOf(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

type decoded struct {
	typ  codec.Type
	body string
}

type outcome struct {
	packets []decoded
	out     []byte
	err     error
	ready   int
}

func (o outcome) String() string {
	return fmt.Sprintf("%d packets, wrote %x, err %v, ready %d", len(o.packets), o.out, o.err, o.ready)
}

func (o outcome) equal(p outcome) bool {
	if len(o.packets) != len(p.packets) || o.err != p.err || o.ready != p.ready || !bytes.Equal(o.out, p.out) {
		return false
	}
	for i := range o.packets {
		if o.packets[i] != p.packets[i] {
			return false
		}
	}
	return true
}

// decodeChunks feeds input to a new decoder in chunks of the sizes next
// returns, the way the server does, checking the decoding contract.
func decodeChunks(t *testing.T, cd *Codec, input []byte, next func() int) outcome {
	t.Helper()
	d := cd.NewDecoder().(*decoder)
	c := &fakeConn{}
	var o outcome
	var pending []byte
	for fed := 0; fed < len(input); {
		size := min(max(next(), 1), len(input)-fed)
		pending = append(pending, input[fed:fed+size]...)
		fed += size
		for len(pending) > 0 {
			before := append([]byte(nil), pending...)
			var p codec.Packet
			n, ok, err := d.Decode(c, pending, &p)
			if n < 0 || n > len(pending) {
				t.Fatalf("Decode consumed %d of %d bytes", n, len(pending))
			}
			if ok && n == 0 {
				t.Fatal("Decode returned a packet without consuming anything")
			}
			if !bytes.Equal(pending[n:], before[n:]) {
				t.Fatal("Decode modified bytes it did not consume")
			}
			if err != nil {
				if o.err = sentinelOf(err); o.err == nil {
					t.Fatalf("Decode error %v wraps no codec sentinel", err)
				}
				o.out, o.ready = c.out, c.ready
				return o
			}
			if ok {
				o.packets = append(o.packets, decoded{p.Type, string(p.Body)})
			}
			pending = pending[n:]
			if len(d.buf) > fuzzMaxBody || cap(d.buf) > 3*fuzzMaxBody+4096 || d.remain < 0 || d.remain > fuzzMaxBody {
				t.Fatalf("body buffer len %d cap %d, remain %d, over the limit %d", len(d.buf), cap(d.buf), d.remain, fuzzMaxBody)
			}
			if n == 0 && !ok {
				if len(pending) >= HeaderSize {
					t.Fatalf("waiting for more with %d bytes buffered", len(pending))
				}
				break
			}
		}
		pending = append([]byte(nil), pending...)
	}
	o.out, o.ready = c.out, c.ready
	return o
}

// checkOutcome checks what the decoder wrote and delivered.
func checkOutcome(t *testing.T, o outcome, heartbeats bool) {
	t.Helper()
	if o.ready > 1 {
		t.Fatalf("Ready called %d times", o.ready)
	}
	for _, p := range o.packets {
		if len(p.body) > fuzzMaxBody {
			t.Fatalf("packet of %d bytes over the limit", len(p.body))
		}
	}
	out := o.out
	if o.ready == 1 {
		if len(out) == 0 || out[0] != TagHandshake {
			t.Fatalf("handshake not answered: %x", out)
		}
		out = out[1:]
	} else if len(o.packets) > 0 {
		t.Fatal("packets before the handshake")
	}
	for len(out) > 0 {
		switch {
		case out[0] == TagHeartbeat && heartbeats:
			out = out[1:]
		case out[0] == TagClose && len(out) == 2:
			want := map[error]byte{codec.ErrTooBig: CloseTooBig, codec.ErrMalformed: CloseProtocol, codec.ErrHandshake: CloseProtocol, codec.ErrProtocol: CloseProtocol}[o.err]
			if o.err == nil || out[1] != want {
				t.Fatalf("close code %d for %v", out[1], o.err)
			}
			out = nil
		default:
			t.Fatalf("unexpected bytes written: %x (all: %x)", out, o.out)
		}
	}
	if o.err != nil && o.err != codec.ErrPeerClosed && (len(o.out) < 2 || o.out[len(o.out)-2] != TagClose) {
		t.Fatalf("error %v without a close frame: wrote %x", o.err, o.out)
	}
}

// Fuzz modes.
const (
	modeRaw        = 1 << iota // no handshake byte prefix
	modeHeartbeats             // AnswerHeartbeat
)

// FuzzDecode feeds arbitrary bytes to the binary-protocol decoder, after the
// handshake byte or raw, whole, byte by byte and in chunks of sizes the
// fuzzer picks: every way of splitting must give the same packets, the same
// bytes written and the same error, within the limit.
func FuzzDecode(f *testing.F) {
	pkt := func(typ uint16, body string) []byte {
		b := []byte{TagPacket, byte(typ >> 8), byte(typ), 0, 0, byte(len(body) >> 8), byte(len(body))}
		return append(b, body...)
	}
	seeds := [][]byte{
		pkt(1, "hello"),
		append(append(pkt(2, ""), TagHeartbeat), pkt(0xFFFF, string(bytes.Repeat([]byte{0xAB}, 300)))...),
		pkt(3, string(bytes.Repeat([]byte{1}, 301))),
		{TagPacket, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF},
		{TagHeartbeat, TagHeartbeat, TagClose, CloseNormal, TagPacket},
		{0x00},
		{TagHandshake},
	}
	for i, s := range seeds {
		f.Add(s, []byte{byte(i), 2, 0}, uint8(modeHeartbeats))
		f.Add(s, []byte{}, uint8(0))
	}
	f.Add(append([]byte{TagHandshake}, pkt(9, "raw")...), []byte{3}, uint8(modeRaw))
	f.Add([]byte("GET / HTTP/1.1\r\n"), []byte{1}, uint8(modeRaw))

	var codecs [4]*Codec
	for m := range codecs {
		codecs[m] = New(Config{MaxBody: fuzzMaxBody, AnswerHeartbeat: m&modeHeartbeats != 0})
	}
	f.Fuzz(func(t *testing.T, data, splits []byte, mode uint8) {
		mode &= modeRaw | modeHeartbeats
		input := data
		if mode&modeRaw == 0 {
			input = append([]byte{TagHandshake}, data...)
		}
		cd := codecs[mode]
		whole := decodeChunks(t, cd, input, func() int { return len(input) })
		checkOutcome(t, whole, mode&modeHeartbeats != 0)
		bytewise := decodeChunks(t, cd, input, func() int { return 1 })
		if !whole.equal(bytewise) {
			t.Fatalf("whole: %v\nbyte by byte: %v", whole, bytewise)
		}
		i := 0
		chunked := decodeChunks(t, cd, input, func() int {
			if len(splits) == 0 {
				return len(input)
			}
			i++
			return int(splits[(i-1)%len(splits)]) + 1
		})
		if !whole.equal(chunked) {
			t.Fatalf("whole: %v\nchunked by %v: %v", whole, splits, chunked)
		}
	})
}
