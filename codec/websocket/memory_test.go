package websocket_test

import (
	"fmt"
	"runtime"
	"strings"
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

// crowdedRequest is an upgrade request of about size bytes whose headers
// are empty fields with distinct names, the costliest request to parse
// into an http.Header per byte.
func crowdedRequest(size int) (req string, fields int) {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	head := request("GET / HTTP/1.1")
	head = head[:len(head)-2]
	var b strings.Builder
	b.WriteString(head)
	for i := 0; b.Len()+8 < size; i++ {
		name := string([]byte{digits[i%36], digits[i/36%36]})
		if i >= 36*36 {
			name += string(digits[i/(36*36)%36])
		}
		b.WriteString(name + ":\r\n")
		fields++
	}
	b.WriteString("\r\n")
	return b.String(), fields
}

// TestKeptRequestMemory opens many connections with KeepRequest and
// measures what each keeps: a request of about 1,600 empty header fields in
// 8 KiB must cost about its own bytes (the Request keeps one copy of them
// and parses headers on demand), not a parsed http.Header of 1,600 entries.
func TestKeptRequestMemory(t *testing.T) {
	const conns = 300
	kept := make(chan *websocket.Request, 2*conns)
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		kept <- websocket.RequestOf(ch)
		_ = ch.Send(p)
	}))
	srv, addr := startServer(t, mux, tio.WithCodec(websocket.New(websocket.Config{
		Mapping: websocket.Raw{}, KeepRequest: true, MaxHeaders: 4096,
	})))
	lean := request("GET / HTTP/1.1")
	crowded, fields := crowdedRequest(websocket.DefaultMaxHandshake)
	if len(crowded) > websocket.DefaultMaxHandshake || fields < 1500 {
		t.Fatalf("request of %d bytes, %d fields", len(crowded), fields)
	}
	var clients []*rawConn
	// open connects conns clients with req and returns the heap's growth
	// per connection.
	open := func(req string) float64 {
		before := heapAfterGC()
		for range conns {
			rc := dialRaw(t, addr)
			rc.write([]byte(req))
			rc.expectUpgraded()
			clients = append(clients, rc)
		}
		waitFor(t, "connections open", func() bool { return srv.Count(tio.All()) == len(clients) })
		return float64(int64(heapAfterGC())-int64(before)) / conns
	}
	leanCost := open(lean)
	crowdedCost := open(crowded)
	extra := crowdedCost - leanCost
	t.Logf("per connection: %.0f B with a %d-byte request, %.0f B with a %d-byte request of %d fields: %.0f B more",
		leanCost, len(lean), crowdedCost, len(crowded), fields, extra)
	// What a connection may keep beyond the lean one: the request's bytes
	// (8 KiB is a size class of its own) and some slack for the heap's
	// noise over a few hundred connections.
	if limit := float64(len(crowded)-len(lean)) + 1024; extra > limit {
		t.Errorf("a connection keeps %.0f B more for the crowded request, want at most %.0f", extra, limit)
	}
	// The request kept is whole.
	rc := clients[len(clients)-1]
	rc.write(frame(finBit|opText, []byte("?")))
	r := <-kept
	if h := r.Header(); len(h) != fields || r.Host != "127.0.0.1" {
		t.Errorf("kept request: host %q, %d header fields, want %d", r.Host, len(h), fields)
	}
	runtime.KeepAlive(clients)
}

// TestDefaultMaxHeaders: the crowded request is refused with 431 by
// default.
func TestDefaultMaxHeaders(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{KeepRequest: true})))
	crowded, _ := crowdedRequest(websocket.DefaultMaxHandshake)
	rc := dialRaw(t, addr)
	rc.write([]byte(crowded))
	expectStatus(t, rc, st431)
}
