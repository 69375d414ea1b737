package websocket

import (
	"bytes"
	"testing"

	"github.com/tiogo/tio/codec"
)

// TestMessageBufferReleased: once a message assembled in the message buffer
// is delivered and handled (Release, which the server calls at the end of
// the pass), the buffer is emptied for the next message, or dropped if the
// message grew it past retainMsg: not at the next Decode, which may come
// only when the peer next speaks.
func TestMessageBufferReleased(t *testing.T) {
	d, c := upgraded(t, Config{Mapping: Raw{}})
	key := [4]byte{1, 2, 3, 4}
	var p codec.Packet
	// feed decodes one read whole, as the server does, and returns the
	// message delivered, if any.
	feed := func(in []byte) (delivered []byte) {
		t.Helper()
		for len(in) > 0 {
			n, ok, err := d.Decode(c, in, &p)
			if err != nil || n == 0 {
				t.Fatalf("n %d, ok %v, err %v", n, ok, err)
			}
			in = in[n:]
			if ok {
				if len(in) != 0 {
					t.Fatal("bytes after the message")
				}
				body := append([]byte(nil), p.Body...) // handled
				d.Release()
				return body
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name    string
		in      [][]byte // the reads, each decoded whole
		size    int
		dropped bool
	}{
		{"large fragmented message", [][]byte{cat(mframe(0x02, key, bytes.Repeat([]byte{'a'}, 100<<10)), mframe(0x80, key, bytes.Repeat([]byte{'b'}, 100<<10)))}, 200 << 10, true},
		{"large frame in two reads", split(mframe(0x82, key, bytes.Repeat([]byte{'c'}, 200<<10)), 1000), 200 << 10, true},
		{"small fragmented message", [][]byte{cat(mframe(0x01, key, []byte("hel")), mframe(0x80, key, []byte("lo")))}, 5, false},
		{"small frame in two reads", split(mframe(0x81, key, bytes.Repeat([]byte{'d'}, 3000)), 100), 3000, false},
	} {
		var body []byte
		for _, in := range tc.in {
			body = feed(in)
		}
		if len(body) != tc.size {
			t.Fatalf("%s: delivered %d bytes, want %d", tc.name, len(body), tc.size)
		}
		msg := d.asm.msg
		switch {
		case tc.dropped && msg != nil:
			t.Errorf("%s: the decoder still holds a buffer of %d bytes after delivering", tc.name, cap(msg))
		case !tc.dropped && (len(msg) != 0 || cap(msg) == 0 || cap(msg) > retainMsg):
			t.Errorf("%s: buffer of len %d, cap %d after delivering, want an empty one to reuse", tc.name, len(msg), cap(msg))
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// split cuts b in two at i.
func split(b []byte, i int) [][]byte { return [][]byte{b[:i], b[i:]} }
