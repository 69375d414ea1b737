package binary_test

import (
	"encoding/binary"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	bin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
)

func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLargeBodyReleased: the buffer that a large body, arriving in pieces,
// grew is garbage once the packet has been handled, without waiting for
// the peer's next bytes.
func TestLargeBodyReleased(t *testing.T) {
	const size = 4 << 20
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(&codec.Packet{Type: 2, Body: binary.BigEndian.AppendUint32(nil, uint32(len(p.Body)))})
	}))
	srv := tio.NewServer("127.0.0.1:0", mux, tio.WithLogger(slog.New(slog.DiscardHandler)), tio.WithEventLoops(2),
		tio.WithCodec(bin.New(bin.Config{})))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	cl := dial(t, srv.Addr().String())
	cl.handshake()
	answer := packet(2, binary.BigEndian.AppendUint32(nil, size))
	msg := packet(1, bodyOf(size))
	cl.write(packet(1, []byte("warm up")))
	cl.expect(packet(2, binary.BigEndian.AppendUint32(nil, 7)))
	before := heapAfterGC()
	for i := 0; i < len(msg); i += 256 << 10 {
		cl.write(msg[i:min(len(msg), i+256<<10)])
	}
	cl.expect(answer)
	time.Sleep(20 * time.Millisecond) // let the loop finish its pass
	grown := int64(heapAfterGC()) - int64(before)
	t.Logf("heap after a %d-byte body: %+d B", size, grown)
	if grown > 1<<20 {
		t.Errorf("the connection holds %d B more after one %d-byte body", grown, size)
	}
	runtime.KeepAlive(msg)
}
