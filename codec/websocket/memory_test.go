package websocket_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// heapAfterGC returns the bytes of live heap objects.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLargeMessageReleased: the buffer that a large fragmented message
// grew is garbage once the message has been handled, without waiting for
// the peer's next bytes.
func TestLargeMessageReleased(t *testing.T) {
	const size = 4 << 20
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(&codec.Packet{Type: websocket.TypeText, Body: fmt.Appendf(nil, "%d", len(p.Body))})
	}))
	_, addr := startServer(t, mux, tio.WithCodec(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))
	for _, tc := range []struct {
		name string
		buf  int
	}{{"fragmented", 64 << 10}, {"one frame", size + 64}} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDial(t, &gorilla.Dialer{WriteBufferSize: tc.buf}, "ws://"+addr+"/", nil)
			msg := binaryOf(size)
			roundTrip(t, c, gorilla.TextMessage, []byte("warm up"), gorilla.TextMessage, []byte("7"))
			before := heapAfterGC()
			roundTrip(t, c, gorilla.BinaryMessage, msg, gorilla.TextMessage, fmt.Appendf(nil, "%d", size))
			// The answer is written once the handler has returned; let the
			// loop finish its pass.
			time.Sleep(20 * time.Millisecond)
			grown := int64(heapAfterGC()) - int64(before)
			t.Logf("heap after a %d-byte message: %+d B", size, grown)
			if grown > 1<<20 {
				t.Errorf("the connection holds %d B more after one %d-byte message", grown, size)
			}
			runtime.KeepAlive(msg)
		})
	}
}
