package websocket

import (
	"encoding/json"
	"fmt"

	"github.com/tiogo/tio/codec"
)

// Text returns a packet that the built-in mappings send as a text message
// (type TypeText): ch.Send(websocket.Text("hello")). A binary-protocol peer
// gets it as a packet of type TypeText.
func Text(s string) *codec.Packet { return &codec.Packet{Type: TypeText, Body: []byte(s)} }

// TextBytes is Text for bytes the caller already has; b is not copied, and
// must not change until the send returns (sends copy or encode at once).
func TextBytes(b []byte) *codec.Packet { return &codec.Packet{Type: TypeText, Body: b} }

// JSON marshals v with encoding/json and returns it as a text message
// packet (see Text).
func JSON(v any) (*codec.Packet, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("websocket: JSON: %w", err)
	}
	return TextBytes(b), nil
}
