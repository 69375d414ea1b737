package websocket_test

import (
	"testing"

	"github.com/tiogo/tio/codec/websocket"
)

func TestTextHelpers(t *testing.T) {
	if p := websocket.Text("hi"); p.Type != websocket.TypeText || string(p.Body) != "hi" {
		t.Fatalf("Text = %+v", p)
	}
	p, err := websocket.JSON(map[string]any{"event": "joined", "room": "lobby"})
	if err != nil || p.Type != websocket.TypeText || string(p.Body) != `{"event":"joined","room":"lobby"}` {
		t.Fatalf("JSON = %+v, %v", p, err)
	}
	if _, err := websocket.JSON(func() {}); err == nil {
		t.Fatal("JSON of a func did not fail")
	}
	wire, _ := websocket.New(websocket.Config{}).Encode(nil, websocket.Text("hi"))
	if string(wire) != "\x81\x02hi" {
		t.Fatalf("Text encodes as % x, want a final text frame", wire)
	}
}
