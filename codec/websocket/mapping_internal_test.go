package websocket

import (
	"testing"

	"github.com/tiogo/tio/codec"
)

// TestEncodeRequestAllocatesNothing: an id head is returned by value.
func TestEncodeRequestAllocatesNothing(t *testing.T) {
	for _, cfg := range []Config{{}, {Client: true}} {
		if cfg.Client && raceEnabled {
			continue // the masks' generators are pooled
		}
		cd := New(cfg)
		dst := make([]byte, 0, 256)
		p := &codec.Packet{Type: 3, ID: 42, Body: []byte("body")}
		if n := testing.AllocsPerRun(100, func() { _, _ = cd.Encode(dst[:0], p) }); n != 0 {
			t.Errorf("client %v: Encode of a request allocates %v times", cfg.Client, n)
		}
	}
}
