package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
)

// Two nodes: A embeds the NATS server and lets B join it; alice logs in on
// B, and a send from A reaches her.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	const typeLogin, typeChat = 1, 2
	newNode := func(cfg cluster.Config) (*cluster.Node, *tio.Server) {
		cfg.Logger = quiet
		node, err := cluster.New(cfg)
		if err != nil {
			panic(err)
		}
		var srv *tio.Server
		mux := handler.NewMux()
		// Login: the body is the user id. Binding to a user is what
		// presence counts.
		mux.HandleFunc(typeLogin, func(ch *channel.Channel, p *codec.Packet) {
			_ = srv.Bind(ch, tio.User(string(p.Body)))
			_ = ch.Send(&codec.Packet{Type: typeLogin, Body: []byte("ok")})
		})
		srv = tio.NewServer("127.0.0.1:0", mux, append(node.Options(), tio.WithLogger(quiet))...)
		if err := srv.Start(); err != nil { // starts the node too
			panic(err)
		}
		return node, srv
	}
	a, srvA := newNode(cluster.Config{NodeID: "a", Listen: "127.0.0.1:0"}) // -nats-listen 127.0.0.1:0
	defer srvA.Shutdown(context.Background())
	b, srvB := newNode(cluster.Config{NodeID: "b", URL: a.ClientURL()}) // -nats nats://…
	defer srvB.Shutdown(context.Background())

	// alice, a binary-protocol client of B, logs in.
	c, err := net.Dial("tcp", srvB.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	login, _ := tbin.New(tbin.Config{}).Encode([]byte{tbin.TagHandshake}, &codec.Packet{Type: typeLogin, Body: []byte("alice")})
	_, _ = c.Write(login)
	read := func() *codec.Packet {
		h := make([]byte, tbin.HeaderSize)
		_, _ = io.ReadFull(c, h)
		body := make([]byte, int(h[3])<<24|int(h[4])<<16|int(h[5])<<8|int(h[6]))
		_, _ = io.ReadFull(c, body)
		return &codec.Packet{Type: codec.Type(h[1])<<8 | codec.Type(h[2]), Body: body}
	}
	_, _ = io.ReadFull(c, make([]byte, 1)) // the handshake's answer
	fmt.Printf("login: %s\n", read().Body)

	// A learns of alice from B's next heartbeat.
	for deadline := time.Now().Add(5 * time.Second); !a.Online("alice") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("a sees alice on %+v\n", a.Presence("alice").Nodes)

	// A send on A: no connection of alice's there, one on B.
	res, err := srvA.Send(tio.User("alice"), &codec.Packet{Type: typeChat, Body: []byte("hello from a")})
	fmt.Println("delivered on a:", res.OK, err)
	p := read()
	fmt.Printf("alice got type %d %q\n", p.Type, p.Body)
	fmt.Printf("b received %d relayed message(s)\n", b.Stats().Received)
	// Output:
	// login: ok
	// a sees alice on [{Node:b Conns:1}]
	// delivered on a: 0 <nil>
	// alice got type 2 "hello from a"
	// b received 1 relayed message(s)
}
