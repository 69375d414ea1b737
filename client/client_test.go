package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

func TestBinaryEcho(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	rec := newRecorder()
	mux := handler.NewMux()
	mux.Handle(1, handler.Inline(rec))
	c := newClient(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	if cn.State() != client.StateConnected {
		t.Fatalf("state %v", cn.State())
	}
	for i := range 10 {
		if err := cn.Send(&codec.Packet{Type: 1, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.wait(t, 10)
	for i, p := range got {
		if p.Type != 1 || len(p.Body) != 1 || p.Body[0] != byte(i) {
			t.Fatalf("packet %d: %+v", i, p)
		}
	}
	if c.Conn(cn.Channel()) != cn {
		t.Fatal("Client.Conn does not find the connection")
	}
}

// TestCallOutOfOrder: many Calls at once, answered after random delays
// (so out of order), each get their own reply.
func TestCallOutOfOrder(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	// A pooled handler on the server answers one connection's requests in
	// order: spread them over a few connections, and over delays.
	conns := []*client.Conn{cn}
	for range 3 {
		more, err := c.Dial(ctx, binURL(srv.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, more)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte{byte(rand.IntN(20)), byte(i), byte(i >> 8)}
			resp, err := conns[i%len(conns)].Call(ctx, &codec.Packet{Type: 2, Body: body})
			switch {
			case err != nil:
				errs <- err
			case !resp.Reply || resp.Type != 2 || string(resp.Body) != string(body):
				errs <- fmt.Errorf("call %d: reply %+v to %v", i, resp, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := c.Stats(); st.Calls != 200 || st.UnmatchedReplies != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCallOutOfOrderOneConnection: a server that answers one
// connection's requests concurrently, after random delays, answers them
// out of order; each Call still gets its own.
func TestCallOutOfOrderOneConnection(t *testing.T) {
	mux := handler.NewMux()
	mux.Handle(2, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		req := codec.Packet{Type: p.Type, ID: p.ID, Body: append([]byte(nil), p.Body...)}
		time.AfterFunc(time.Duration(rand.IntN(30))*time.Millisecond, func() {
			_ = ch.Reply(&req, &codec.Packet{Type: 2, Body: req.Body})
		})
	}))
	srv := tiotest.NewServer(t, mux)
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var order []int
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Appendf(nil, "call-%d", i)
			resp, err := cn.Call(ctx, &codec.Packet{Type: 2, Body: body})
			if err != nil {
				t.Error(err)
				return
			}
			if string(resp.Body) != string(body) {
				t.Errorf("call %d got %q", i, resp.Body)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
		time.Sleep(100 * time.Microsecond)
	}
	wg.Wait()
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatalf("the replies came in order: the test shows nothing")
	}
	t.Logf("%d inversions among %d replies", inversions, len(order))
}

func TestCallContextAndLateReply(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	_, err = cn.Call(short, &codec.Packet{Type: 2, Body: []byte{150}}) // answered after 150 ms
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call: %v", err)
	}
	tiotest.Eventually(t, "the late reply counted", func() bool { return c.Stats().UnmatchedReplies == 1 })
	// The connection goes on.
	if resp, err := cn.Call(ctx, &codec.Packet{Type: 2, Body: []byte{0, 'x'}}); err != nil || string(resp.Body) != "\x00x" {
		t.Fatalf("Call after a late reply: %v %v", resp, err)
	}
}

// TestCallConnLost: a Call whose connection drops fails with ErrConnLost.
func TestCallConnLost(t *testing.T) {
	mux := handler.NewMux()
	mux.Handle(3, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		ch.Close(channel.ReasonClosedByApp) // never answers
	}))
	srv := tiotest.NewServer(t, mux)
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cn.Call(ctx, &codec.Packet{Type: 3})
	if !errors.Is(err, client.ErrConnLost) {
		t.Fatalf("Call: %v, want ErrConnLost", err)
	}
	if c.Stats().CallsLost != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
	<-cn.Done() // no reconnect: the connection is closed
	if !errors.Is(cn.Err(), client.ErrConnLost) {
		t.Fatalf("Err %v", cn.Err())
	}
}

func TestCallOnLoopFailsFast(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	got := make(chan error, 1)
	var c *client.Client
	mux := handler.NewMux()
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_, err := c.Conn(ch).Call(context.Background(), &codec.Packet{Type: 2})
		got <- err
	}))
	c = newClient(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	_ = cn.Send(&codec.Packet{Type: 1})
	select {
	case err := <-got:
		if !errors.Is(err, client.ErrOnLoop) {
			t.Fatalf("Call on a loop: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Call on a loop blocked")
	}
}
