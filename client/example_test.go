package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
)

// Packet types of a small chat protocol.
const (
	typeLogin codec.Type = 1 // request: a name; reply: a greeting
	typeSay   codec.Type = 2 // a message to the room
	typeHeard codec.Type = 3 // a message from the room
)

// Example dials a tio server over WebSocket, logs in with a Call from the
// OnConnected hook (which runs again after each reconnect), and routes
// what the server sends to a handler, exactly as on a server.
func Example() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// A server: it answers logins and echoes what is said.
	smux := handler.NewMux()
	smux.HandleFunc(typeLogin, func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Reply(p, &codec.Packet{Type: typeLogin, Body: append([]byte("welcome, "), p.Body...)})
	})
	smux.Handle(typeSay, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(&codec.Packet{Type: typeHeard, Body: p.Body})
	}))
	srv := tio.NewServer("127.0.0.1:0", smux, tio.WithLogger(quiet))
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	// The client: what the server sends goes to handlers.
	heard := make(chan string, 1)
	mux := handler.NewMux()
	mux.Handle(typeHeard, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		heard <- string(p.Body)
	}))
	var c *client.Client
	c, err := client.New(mux,
		client.WithLogger(quiet),
		client.WithReconnect(client.Reconnect{}), // 1 s, doubling up to 30 s, jittered, forever
		client.WithQueue(100, 0),                 // sends wait while the connection is down
		client.WithOnConnected(func(ch *channel.Channel, reconnect bool) {
			// On the worker pool: it may block. Its Call goes out at once.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := c.Conn(ch).Call(ctx, &codec.Packet{Type: typeLogin, Body: []byte("gopher")})
			if err != nil {
				ch.Close(channel.ReasonClosedByApp) // and try again later
				return
			}
			fmt.Printf("%s (reconnect: %v)\n", resp.Body, reconnect)
		}))
	if err != nil {
		panic(err)
	}
	defer c.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws://"+srv.Addr().String()+"/chat")
	if err != nil {
		panic(err)
	}
	// Sent after the login: the queue waits for OnConnected.
	if err := cn.Send(&codec.Packet{Type: typeSay, Body: []byte("hello, room")}); err != nil {
		panic(err)
	}
	fmt.Println("heard:", <-heard)
	// Output:
	// welcome, gopher (reconnect: false)
	// heard: hello, room
}
