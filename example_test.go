package tio_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// A server that answers packets of type 1 with "pong" on WebSocket and on
// the binary protocol, on one port.
func ExampleNewServer() {
	mux := handler.NewMux()
	// Inline: the handler only queues a reply, so it may run on the event loop.
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(&codec.Packet{Type: 1, Body: []byte("pong")})
	}))
	srv := tio.NewServer("127.0.0.1:0", mux)
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	// A WebSocket client: by default a binary message's first byte is its type.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	_ = ws.WriteMessage(websocket.BinaryMessage, []byte{1, 'p', 'i', 'n', 'g'})
	_, msg, _ := ws.ReadMessage()
	fmt.Printf("websocket: type %d %q\n", msg[0], msg[1:])

	// A binary-protocol client: handshake byte, then a packet of type 1.
	c, _ := net.Dial("tcp", srv.Addr().String())
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := tbin.New(tbin.Config{}).Encode([]byte{tbin.TagHandshake}, &codec.Packet{Type: 1, Body: []byte("ping")})
	_, _ = c.Write(req)
	reply := make([]byte, 1+tbin.HeaderSize+4)
	_, _ = io.ReadFull(c, reply)
	fmt.Printf("binary: handshake %#x, type %d %q\n", reply[0], reply[3], reply[1+tbin.HeaderSize:])
	// Output:
	// websocket: type 1 "pong"
	// binary: handshake 0xa1, type 1 "pong"
}

// Handlers that block (a database call, say) run on the worker pool, which
// keeps each connection's packets in order; a WebSocket text message has the
// type tws.TypeText under the default mapping.
func ExampleServer_pool() {
	mux := handler.NewMux()
	mux.HandleFunc(tws.TypeText, func(ch *channel.Channel, p *codec.Packet) {
		time.Sleep(time.Millisecond) // stands in for a slow lookup
		_ = ch.Send(&codec.Packet{Type: tws.TypeText, Body: append([]byte("hello, "), p.Body...)})
	})
	srv := tio.NewServer("127.0.0.1:0", mux, tio.WithWorkers(16, 256))
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/chat", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	for _, name := range []string{"ann", "bob"} {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(name))
	}
	for range 2 {
		_, msg, _ := ws.ReadMessage()
		fmt.Println(string(msg))
	}
	// Output:
	// hello, ann
	// hello, bob
}
