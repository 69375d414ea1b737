package binary

import (
	"bytes"
	"testing"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

const fuzzMaxBody = 300

// checkBounds is the binary decoder's own invariants, checked after every
// call: its body buffer within the limit, and it waits for more only with
// less than a header buffered (a request's or reply's header is longer).
func checkBounds(t testing.TB, dec codec.Decoder, buffered []byte, n int, ok bool) {
	d := dec.(*decoder)
	if len(d.buf) > fuzzMaxBody || cap(d.buf) > 3*fuzzMaxBody+4096 || d.remain < 0 || d.remain > fuzzMaxBody {
		t.Fatalf("body buffer len %d cap %d, remain %d, over the limit %d", len(d.buf), cap(d.buf), d.remain, fuzzMaxBody)
	}
	header := HeaderSize
	if len(buffered) > 0 && (buffered[0] == TagRequest || buffered[0] == TagReply) {
		header = IDHeaderSize
	}
	if n == 0 && !ok && len(buffered) >= header {
		t.Fatalf("waiting for more with %d bytes buffered", len(buffered))
	}
}

// checkOutcome checks what the decoder wrote and delivered.
func checkOutcome(t *testing.T, o codectest.Result, heartbeats bool) {
	t.Helper()
	for _, p := range o.Packets {
		if len(p.Body) > fuzzMaxBody {
			t.Fatalf("packet of %d bytes over the limit", len(p.Body))
		}
	}
	out := o.Written
	if o.Readies == 1 {
		if len(out) == 0 || out[0] != TagHandshake {
			t.Fatalf("handshake not answered: %x", out)
		}
		out = out[1:]
	} else if len(o.Packets) > 0 {
		t.Fatal("packets before the handshake")
	}
	for len(out) > 0 {
		switch {
		case out[0] == TagHeartbeat && heartbeats:
			out = out[1:]
		case out[0] == TagClose && len(out) == 2:
			want := map[error]byte{codec.ErrTooBig: CloseTooBig, codec.ErrMalformed: CloseProtocol, codec.ErrHandshake: CloseProtocol, codec.ErrProtocol: CloseProtocol}[o.Err]
			if o.Err == nil || out[1] != want {
				t.Fatalf("close code %d for %v", out[1], o.Err)
			}
			out = nil
		default:
			t.Fatalf("unexpected bytes written: %x (all: %x)", out, o.Written)
		}
	}
	if o.Err != nil && o.Err != codec.ErrPeerClosed && (len(o.Written) < 2 || o.Written[len(o.Written)-2] != TagClose) {
		t.Fatalf("error %v without a close frame: wrote %x", o.Err, o.Written)
	}
}

// Fuzz modes.
const (
	modeRaw        = 1 << iota // no handshake byte prefix
	modeHeartbeats             // heartbeats answered (not SilentHeartbeats)
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
		codecs[m] = New(Config{MaxBody: fuzzMaxBody, SilentHeartbeats: m&modeHeartbeats == 0})
	}
	f.Fuzz(func(t *testing.T, data, splits []byte, mode uint8) {
		mode &= modeRaw | modeHeartbeats
		input := data
		if mode&modeRaw == 0 {
			input = append([]byte{TagHandshake}, data...)
		}
		whole := codectest.Splits(t, codecs[mode].NewDecoder, input, splits, checkBounds)
		checkOutcome(t, whole, mode&modeHeartbeats != 0)
	})
}
