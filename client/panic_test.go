package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// TestPanicClosesOneConnection: a panicking handler, inline or on the
// pool, closes its own connection (which reconnects) and nothing else; a
// panicking OnConnected hook closes its connection, which reconnects; a
// panicking state hook is recovered. All are counted.
func TestPanicClosesOneConnection(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	mux := handler.NewMux()
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		if string(p.Body) == "boom" {
			panic("inline boom")
		}
	}))
	mux.HandleFunc(7, func(ch *channel.Channel, p *codec.Packet) {}) // unused
	c := newClient(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	re := client.WithReconnect(client.Reconnect{Initial: 20 * time.Millisecond})
	victim, err := c.Dial(ctx, binURL(srv.Addr()), re)
	if err != nil {
		t.Fatal(err)
	}
	var hookRuns atomic.Int32
	bystander, err := c.Dial(ctx, binURL(srv.Addr()), re,
		client.WithOnConnected(func(ch *channel.Channel, reconnect bool) {
			if hookRuns.Add(1) == 1 {
				panic("hook boom")
			}
		}),
		client.WithOnStateChange(func(*client.Conn, client.State, error) { panic("state boom") }))
	if err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "the hook's panic, then a reconnect", func() bool {
		return hookRuns.Load() == 2 && bystander.State() == client.StateConnected
	})
	before := bystander.Channel()
	first := victim.Channel()
	_ = victim.Send(&codec.Packet{Type: 1, Body: []byte("boom")}) // echoed: the handler panics
	tiotest.Eventually(t, "the victim reconnected", func() bool {
		ch := victim.Channel()
		return victim.State() == client.StateConnected && ch != nil && ch != first
	})
	if r, _ := first.Reason(); r != channel.ReasonHandlerPanic {
		t.Fatalf("the victim's first channel closed for %v", r)
	}
	if bystander.Channel() != before || bystander.State() != client.StateConnected {
		t.Fatal("the bystander was disturbed")
	}
	// The hook panicked once, the handler once, the state hook at each
	// change of the bystander (reconnecting: its first connection closed
	// during the hook; connected).
	if st := c.Stats(); st.Panics != 4 {
		t.Fatalf("stats %+v", st)
	}
	// The bystander still works.
	if resp, err := bystander.Call(ctx, &codec.Packet{Type: 2, Body: []byte{0}}); err != nil || !resp.Reply {
		t.Fatalf("Call: %v %v", resp, err)
	}
}

// TestPooledHandlerPanic: a panic on the pool closes that connection too.
func TestPooledHandlerPanic(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	mux := handler.NewMux()
	mux.HandleFunc(1, func(ch *channel.Channel, p *codec.Packet) { panic("pooled boom") })
	c := newClient(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	ch := cn.Channel()
	_ = cn.Send(&codec.Packet{Type: 1, Body: []byte("x")})
	<-cn.Done()
	if r, _ := ch.Reason(); r != channel.ReasonHandlerPanic {
		t.Fatalf("closed for %v", r)
	}
	if st := c.Stats(); st.Panics != 1 {
		t.Fatalf("stats %+v", st)
	}
}
