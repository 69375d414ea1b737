package tio_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/tiotest"
)

// fakeRelay records what a server publishes and lets the test deliver as
// another node would.
type fakeRelay struct {
	mu      sync.Mutex
	local   tio.Local
	got     []tio.RelayMessage
	fail    error
	stopped bool
}

func (r *fakeRelay) Start(l tio.Local) error { r.local = l; return nil }
func (r *fakeRelay) Publish(m tio.RelayMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Packet != nil {
		cp := *m.Packet
		cp.Body = append([]byte(nil), cp.Body...)
		m.Packet = &cp
	}
	r.got = append(r.got, m)
	return r.fail
}
func (r *fakeRelay) Stop(context.Context) error { r.stopped = true; return nil }
func (r *fakeRelay) take() []tio.RelayMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// A node delivers to its own channels and publishes each send and close
// once, except to channel ids (which belong to one server); what the relay
// delivers from other nodes reaches local channels and is never published
// again; a relay failure is reported after the local delivery.
func TestRelayContract(t *testing.T) {
	r := &fakeRelay{}
	srv := tiotest.NewServer(t, echoMux(), tio.WithRelay(r))
	c := tiotest.DialBinary(t, srv)
	tiotest.Eventually(t, "connected", func() bool {
		chs := srv.Channels(tio.All())
		return len(chs) == 1 && chs[0].IsReady()
	})
	ch := srv.Channels(tio.All())[0]
	must(t, srv.Bind(ch, tio.User("u")))

	p := &codec.Packet{Type: 3, Body: []byte("hi")}
	if res, err := srv.Send(tio.User("u"), p); err != nil || res.OK != 1 {
		t.Fatalf("Send = %+v, %v", res, err)
	}
	if got := r.take(); len(got) != 1 || got[0].Op != tio.RelaySend || got[0].Target != tio.User("u") || string(got[0].Packet.Body) != "hi" {
		t.Fatalf("published %+v", got)
	}
	c.Recv()
	if _, err := srv.Send(tio.ID(ch.ID()), p); err != nil || len(r.take()) != 0 {
		t.Fatal("a send to a channel id was published")
	}
	c.Recv()

	// From another node: delivered here, not published again.
	if res, err := r.local.Send(tio.User("u"), &codec.Packet{Type: 4, Body: []byte("remote")}); err != nil || res.OK != 1 {
		t.Fatalf("Local.Send = %+v, %v", res, err)
	}
	if p := c.Recv(); string(p.Body) != "remote" || len(r.take()) != 0 {
		t.Fatalf("remote delivery %q (published again: %v)", p.Body, r.take())
	}

	r.fail = errors.New("nats down")
	if res, err := srv.Send(tio.All(), p); !errors.Is(err, tio.ErrRelay) || res.OK != 1 {
		t.Fatalf("Send with the relay down = %+v, %v; want a local delivery and ErrRelay", res, err)
	}
	c.Recv()
	r.fail = nil
	if n, err := srv.Close(tio.User("u"), channel.ReasonClosedByApp); err != nil || n != 1 {
		t.Fatalf("Close = %d, %v", n, err)
	}
	if got := r.take(); len(got) != 2 || got[1].Op != tio.RelayClose || got[1].Reason != channel.ReasonClosedByApp {
		t.Fatalf("close published as %+v", got)
	}
}
