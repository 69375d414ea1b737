package websocket_test

import (
	"errors"
	"testing"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// TestTypePrefixRequests: requests and replies under TypePrefix are
// [0xFE|0xFF, type, id:u32 BE, body…]; plain packets of types 0xFE and
// 0xFF cannot be encoded; heads that are short or carry id 0 are invalid.
func TestTypePrefixRequests(t *testing.T) {
	m := websocket.TypePrefix{}
	for _, tc := range []struct {
		p    codec.Packet
		head []byte
	}{
		{codec.Packet{Type: 7, ID: 0x01020304}, []byte{0xFE, 7, 1, 2, 3, 4}},
		{codec.Packet{Type: 0xFF, ID: 9, Reply: true}, []byte{0xFF, 0xFF, 0, 0, 0, 9}},
		{codec.Packet{Type: 7}, []byte{7}},
	} {
		text, head, err := m.Encode(&tc.p)
		if err != nil || text || string(head.Bytes()) != string(tc.head) {
			t.Errorf("Encode(%+v) = %v %x %v, want %x", tc.p, text, head.Bytes(), err, tc.head)
		}
		var p codec.Packet
		if err := m.Decode(false, append(head.Bytes(), 'x'), &p); err != nil || p.Type != tc.p.Type || p.ID != tc.p.ID || p.Reply != tc.p.Reply || string(p.Body) != "x" {
			t.Errorf("Decode of %x = %+v %v", tc.head, p, err)
		}
	}
	for _, p := range []codec.Packet{
		{Type: 0xFE}, {Type: 0xFF}, {Type: 0x1FF, ID: 1}, {Type: websocket.TypeText, ID: 1}, {Type: 1, Reply: true},
	} {
		if _, _, err := m.Encode(&p); !errors.Is(err, codec.ErrUnsupported) {
			t.Errorf("Encode(%+v): %v, want ErrUnsupported", p, err)
		}
	}
	for _, b := range [][]byte{{0xFE}, {0xFE, 1, 0, 0, 1}, {0xFF, 1, 0, 0, 0, 0, 'x'}} {
		var p codec.Packet
		if err := m.Decode(false, b, &p); !errors.Is(err, codec.ErrInvalidData) {
			t.Errorf("Decode(%x): %v, want ErrInvalidData", b, err)
		}
	}
	if _, _, err := (websocket.Raw{}).Encode(&codec.Packet{Type: 1, ID: 1}); !errors.Is(err, codec.ErrUnsupported) {
		t.Errorf("Raw encoded an id: %v", err)
	}
}

// TestServerRepliesOverWebSocket: a gorilla client sends a request under
// TypePrefix; the server's handler answers with ch.Reply; the reply comes
// back with the request's id.
func TestServerRepliesOverWebSocket(t *testing.T) {
	mux := handler.NewMux()
	mux.Handle(4, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		if p.ID == 0 {
			t.Errorf("the request lost its id: %+v", p)
		}
		_ = ch.Reply(p, &codec.Packet{Type: 4, Body: append([]byte("re:"), p.Body...)})
	}))
	mux.Handle(5, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Reply(p, &codec.Packet{Type: 5, Body: p.Body})
	}))
	_, addr := startServer(t, mux)
	c := mustDial(t, nil, "ws://"+addr+"/", nil)
	roundTrip(t, c, gorilla.BinaryMessage, []byte{0xFE, 4, 0, 0, 0x30, 0x39, 'h', 'i'},
		gorilla.BinaryMessage, []byte{0xFF, 4, 0, 0, 0x30, 0x39, 'r', 'e', ':', 'h', 'i'})
	// A plain packet after it carries no id: Reply sends it plain.
	roundTrip(t, c, gorilla.BinaryMessage, []byte{5, 'x'}, gorilla.BinaryMessage, []byte{5, 'x'})
}
