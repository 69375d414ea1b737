package websocket

import (
	"math/rand/v2"
	"testing"

	"github.com/gobwas/ws"
)

// Answer walks the frames a peer sent after the server's close frame, in
// pieces of any size, and finds the peer's close frame behind them.
func TestAnswerWalksFrames(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var stream []byte
		for range 1 + r.IntN(40) {
			n := r.IntN(70000)
			if r.IntN(3) == 0 {
				n = r.IntN(130)
			}
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = 0x88 // close opcodes everywhere in the payloads
			}
			f := ws.NewFrame(ws.OpText, r.IntN(2) == 0, payload)
			if r.IntN(2) == 0 {
				f = ws.MaskFrameInPlace(f)
			}
			b, err := ws.CompileFrame(f)
			if err != nil {
				t.Fatal(err)
			}
			stream = append(stream, b...)
		}
		closeAt := len(stream)
		b, _ := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
		stream = append(stream, b...)
		d := &decoder{state: stSaidBye}
		var held []byte // what the caller keeps between reads
		pos, answered := 0, false
		for pos < len(stream) && !answered {
			k := min(1+r.IntN(20000), len(stream)-pos)
			held = append(held, stream[pos:pos+k]...)
			pos += k
			var n int
			n, answered = d.Answer(held)
			if !answered && len(held)-n > 13 {
				t.Fatalf("round %d: left %d bytes", round, len(held)-n)
			}
			held = held[n:]
		}
		if !answered || pos <= closeAt {
			t.Fatalf("round %d: answered %v at %d, the close frame at %d", round, answered, pos, closeAt)
		}
	}
}
