package tio_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/stats"
	"github.com/tiogo/tio/tiotest"
)

// peers runs a server and pairs each client a test dials with the server's
// channel for it (handed over by the connected hook; clients are dialed one
// at a time, so the order matches).
type peers struct {
	t   testing.TB
	srv *tio.Server
	got chan *channel.Channel
}

func newPeers(t testing.TB, h handler.Handler, hooks tio.Hooks, opts ...tio.Option) *peers {
	t.Helper()
	p := &peers{t: t, got: make(chan *channel.Channel, 64)}
	inner := hooks.OnConnected
	hooks.OnConnected = func(ch *channel.Channel) {
		if inner != nil {
			inner(ch)
		}
		p.got <- ch
	}
	p.srv = tiotest.NewServer(t, h, append([]tio.Option{tio.WithHooks(hooks)}, opts...)...)
	return p
}

func (p *peers) next() *channel.Channel {
	p.t.Helper()
	select {
	case ch := <-p.got:
		return ch
	case <-time.After(5 * time.Second):
		p.t.Fatal("no connected hook")
		return nil
	}
}

func (p *peers) bin() (*tiotest.BinaryConn, *channel.Channel) {
	p.t.Helper()
	c := tiotest.DialBinary(p.t, p.srv)
	return c, p.next()
}

// binFrom dials from a local address such as 127.0.0.2 (another IP).
func (p *peers) binFrom(local string) (*tiotest.BinaryConn, *channel.Channel) {
	p.t.Helper()
	return tiotest.DialBinaryFrom(p.t, p.srv, local), p.next()
}

func (p *peers) ws() (*websocket.Conn, *channel.Channel) {
	p.t.Helper()
	c := dialWS(p.t, p.srv, "/")
	return c, p.next()
}

func ids(chs []*channel.Channel) []uint64 {
	out := make([]uint64, len(chs))
	for i, ch := range chs {
		out[i] = ch.ID()
	}
	return out
}

func sortedIDs(chs ...*channel.Channel) []uint64 {
	out := ids(chs)
	slices.Sort(out)
	return out
}

var localhost = netip.MustParseAddr("127.0.0.1")

// Binds, queries and unbinds on live connections of both protocols; a
// closed connection leaves every index.
func TestBindQueries(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{})
	srv := p.srv
	phoneC, phone := p.bin()
	_, browser := p.ws()
	_, other := p.bin()

	// A user with two connections.
	must(t, srv.Bind(phone, tio.User("alice")))
	must(t, srv.Bind(browser, tio.User("alice")))
	must(t, srv.Bind(other, tio.User("bob")))
	if got, want := ids(srv.Channels(tio.User("alice"))), sortedIDs(phone, browser); !slices.Equal(got, want) {
		t.Fatalf("ChannelsOfUser = %v, want %v", got, want)
	}
	if n := srv.Count(tio.User("alice")); n != 2 {
		t.Fatalf("CountUser = %d", n)
	}
	if u := srv.Bindings(browser).User; u != "alice" {
		t.Fatalf("UserOf = %q", u)
	}
	// Rebinding moves the channel to another user.
	must(t, srv.Bind(other, tio.User("carol")))
	if srv.Count(tio.User("bob")) != 0 || srv.Count(tio.User("carol")) != 1 {
		t.Fatalf("rebind: bob %d carol %d", srv.Count(tio.User("bob")), srv.Count(tio.User("carol")))
	}

	// Groups.
	must(t, srv.Bind(phone, tio.Group("room1")))
	must(t, srv.Bind(phone, tio.Group("room2")))
	must(t, srv.Bind(phone, tio.Group("room2"))) // twice: no effect
	must(t, srv.Bind(other, tio.Group("room1")))
	if g := srv.Bindings(phone).Groups; !slices.Equal(g, []string{"room1", "room2"}) {
		t.Fatalf("GroupsOf = %v", g)
	}
	if !srv.Bindings(other).InGroup("room1") || srv.Bindings(other).InGroup("room2") || srv.Bindings(browser).InGroup("room1") {
		t.Fatal("IsInGroup wrong")
	}
	if n := srv.Count(tio.Group("room1")); n != 2 {
		t.Fatalf("CountGroup = %d", n)
	}
	if got, want := ids(srv.Channels(tio.Group("room1"))), sortedIDs(phone, other); !slices.Equal(got, want) {
		t.Fatalf("ChannelsOfGroup = %v, want %v", got, want)
	}
	// All of a user's connections to a group, and out again (t-io's
	// bindGroup(tioConfig, userid, group)): one line each.
	for _, ch := range srv.Channels(tio.User("alice")) {
		must(t, srv.Bind(ch, tio.Group("room2")))
	}
	if !srv.Bindings(browser).InGroup("room2") || srv.Count(tio.Group("room2")) != 2 {
		t.Fatal("alice's channels not in room2")
	}
	for _, ch := range srv.Channels(tio.User("alice")) {
		if ok, err := srv.Unbind(ch, tio.Group("room2")); !ok || err != nil {
			t.Fatalf("Unbind(%v, room2) = %v, %v", ch, ok, err)
		}
	}
	if srv.Count(tio.Group("room2")) != 0 || srv.Stats().Bindings.Groups != 1 {
		t.Fatalf("room2 not gone: %d, sizes %+v", srv.Count(tio.Group("room2")), srv.Stats().Bindings)
	}
	if ok, _ := srv.Unbind(other, tio.Group("room1")); !ok {
		t.Fatal("Unbind from a group it is in")
	}
	if ok, _ := srv.Unbind(other, tio.Group("room1")); ok {
		t.Fatal("Unbind from a group it left")
	}

	// Tokens: many channels per token.
	must(t, srv.Bind(phone, tio.Token("tok")))
	must(t, srv.Bind(browser, tio.Token("tok")))
	if n := srv.Count(tio.Token("tok")); n != 2 || srv.Bindings(phone).Token != "tok" {
		t.Fatalf("CountToken = %d", n)
	}
	if ok, _ := srv.Unbind(browser, tio.Token("other")); ok || srv.Count(tio.Token("tok")) != 2 {
		t.Fatal("Unbind from a token it is not bound to unbound it")
	}
	if ok, _ := srv.Unbind(browser, tio.Token("")); !ok || srv.Count(tio.Token("tok")) != 1 {
		t.Fatal("Unbind from its token")
	}
	if got := ids(srv.Channels(tio.Token("tok"))); !slices.Equal(got, sortedIDs(phone)) {
		t.Fatalf("ChannelsOfToken = %v", got)
	}

	// Business ids: one channel each; binding again moves it.
	must(t, srv.Bind(phone, tio.BsID("order-1")))
	if only(srv.Channels(tio.BsID("order-1"))) != phone || srv.Bindings(phone).BsID != "order-1" {
		t.Fatal("BindBsID")
	}
	must(t, srv.Bind(other, tio.BsID("order-1")))
	if only(srv.Channels(tio.BsID("order-1"))) != other || srv.Bindings(phone).BsID != "" || srv.Bindings(other).BsID != "order-1" {
		t.Fatalf("bsid did not move: holder %v, phone %q", only(srv.Channels(tio.BsID("order-1"))), srv.Bindings(phone).BsID)
	}
	if ok, _ := srv.Unbind(phone, tio.BsID("")); ok {
		t.Fatal("Unbind of the business id's old holder unbound something")
	}

	// IPs, all channels.
	if got, want := ids(srv.Channels(tio.IP(localhost))), sortedIDs(phone, browser, other); !slices.Equal(got, want) {
		t.Fatalf("ChannelsOfIP = %v, want %v", got, want)
	}
	if n := srv.Count(tio.IP(localhost)); n != 3 {
		t.Fatalf("CountIP = %d", n)
	}
	if got, want := ids(srv.Channels(tio.All())), sortedIDs(phone, browser, other); !slices.Equal(got, want) {
		t.Fatalf("Channels = %v, want %v", got, want)
	}

	// Bad keys.
	if err := srv.Bind(phone, tio.User("")); !errors.Is(err, tio.ErrEmptyKey) {
		t.Fatalf("empty user id: %v", err)
	}
	if err := srv.Bind(phone, tio.Group("")); !errors.Is(err, tio.ErrEmptyKey) {
		t.Fatalf("empty group: %v", err)
	}

	// Unbinding from All() keeps the channel open and indexed by IP only.
	if ok, _ := srv.Unbind(other, tio.All()); !ok {
		t.Fatal("Unbind(All) of a bound channel")
	}
	if srv.Bindings(other).User != "" || only(srv.Channels(tio.BsID("order-1"))) != nil || srv.Count(tio.IP(localhost)) != 3 {
		t.Fatal("UnbindAll")
	}

	// Closing removes a channel from every index by itself.
	phoneC.Close()
	tiotest.Eventually(t, "phone detached", func() bool { return srv.Count(tio.User("alice")) == 1 })
	if srv.Count(tio.Group("room1")) != 0 || srv.Count(tio.Token("tok")) != 0 || srv.Bindings(phone).Groups != nil || srv.Count(tio.IP(localhost)) != 2 {
		t.Fatalf("closed channel still indexed: sizes %+v", srv.Stats().Bindings)
	}
	if err := srv.Bind(phone, tio.User("alice")); !errors.Is(err, tio.ErrNotOpen) {
		t.Fatalf("bind of a closed channel: %v", err)
	}
	if err := srv.Bind(phone, tio.Group("room1")); !errors.Is(err, tio.ErrNotOpen) {
		t.Fatalf("bind group of a closed channel: %v", err)
	}
	// Left: browser, bound to alice and nothing else; other, unbound.
	want := stats.Bindings{Users: 1, IPs: 1, Bound: 1}
	if got := srv.Stats().Bindings; got != want {
		t.Fatalf("sizes %+v, want %+v", got, want)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Pages of a group in ascending channel id, with a converter.
func TestPageOfGroup(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{})
	var all []*channel.Channel
	for i := range 7 {
		_, ch := p.bin()
		all = append(all, ch)
		if i != 3 {
			must(t, p.srv.Bind(ch, tio.Group("g")))
		}
	}
	in := append(slices.Clone(all[:3]), all[4:]...)
	var got []uint64
	for n := 1; n <= 3; n++ {
		pg := p.srv.Page(tio.Group("g"), n, 4)
		if pg.Number != n || pg.Size != 4 || pg.Total != 6 || pg.Pages() != 2 {
			t.Fatalf("page %d: %+v", n, pg)
		}
		got = append(got, ids(pg.Items)...)
		if n == 3 && len(pg.Items) != 0 {
			t.Fatalf("page past the end has %d items", len(pg.Items))
		}
	}
	if want := sortedIDs(in...); !slices.Equal(got, want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
	conv := tio.MapPage(p.srv.Page(tio.Group("g"), 2, 4), func(ch *channel.Channel) string { return fmt.Sprint("#", ch.ID()) })
	if len(conv.Items) != 2 || conv.Items[0] != fmt.Sprint("#", in[4].ID()) || conv.Total != 6 {
		t.Fatalf("converted page %+v", conv)
	}
	if all := p.srv.Page(tio.All(), 1, 100); all.Total != 7 || len(all.Items) != 7 {
		t.Fatalf("PageOfAll %+v", all)
	}
}

// t-io's TioListener and GroupListener points: connected, received bytes,
// decoded, handled with its cost, sent, close with its reason, and bind and
// unbind events, including those of a channel that closed and of a business
// id that moved.
func TestListenerHooks(t *testing.T) {
	type ev struct {
		kind tio.TargetKind
		key  string
		bind bool
		id   uint64
	}
	var (
		mu                                 sync.Mutex
		evs                                []ev
		received, decoded, handled, sent   atomic.Int64
		closed                             = make(chan channel.Reason, 4)
		costSeen                           atomic.Bool
		connectedBeforeBind, bindsInHookOK atomic.Int64
	)
	record := func(bind bool) func(ch *channel.Channel, t tio.Target) {
		return func(ch *channel.Channel, t tio.Target) {
			mu.Lock()
			evs = append(evs, ev{t.Kind(), t.Key(), bind, ch.ID()})
			mu.Unlock()
		}
	}
	var srvp atomic.Pointer[tio.Server]
	hooks := tio.Hooks{
		OnConnected: func(ch *channel.Channel) {
			connectedBeforeBind.Add(1)
			// Hooks may bind: the registry calls hooks with no lock held.
			if srvp.Load().Bind(ch, tio.Group("lobby")) == nil {
				bindsInHookOK.Add(1)
			}
		},
		OnReceived: func(ch *channel.Channel, n int) { received.Add(int64(n)) },
		OnDecoded:  func(ch *channel.Channel, p *codec.Packet) { decoded.Add(1) },
		OnHandled: func(ch *channel.Channel, p *codec.Packet, cost time.Duration) {
			handled.Add(1)
			if cost > 0 {
				costSeen.Store(true)
			}
		},
		OnSent:   func(ch *channel.Channel, n int) { sent.Add(int64(n)) },
		OnClose:  func(ch *channel.Channel, r channel.Reason, err error) { closed <- r },
		OnBind:   record(true),
		OnUnbind: record(false),
	}
	mux := handler.NewMux()
	mux.HandleFunc(1, func(ch *channel.Channel, p *codec.Packet) {
		time.Sleep(time.Millisecond)
		_ = ch.Send(p)
	})
	srv := tio.NewServer("127.0.0.1:0", mux, tio.WithHooks(hooks))
	srvp.Store(srv)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())

	a := tiotest.DialBinary(t, srv)
	b := tiotest.DialBinary(t, srv)
	tiotest.Eventually(t, "connected", func() bool { return bindsInHookOK.Load() == 2 })
	chs := srv.Channels(tio.Group("lobby"))
	chA, chB := chs[0], chs[1]
	a.Send(1, []byte("ping"))
	if p := a.Recv(); string(p.Body) != "ping" {
		t.Fatalf("echo %q", p.Body)
	}
	tiotest.Eventually(t, "handled", func() bool { return handled.Load() == 1 })
	if decoded.Load() != 1 || received.Load() != 2+tbin.HeaderSize+4 || !costSeen.Load() {
		t.Fatalf("decoded %d received %d cost %v", decoded.Load(), received.Load(), costSeen.Load())
	}
	tiotest.Eventually(t, "sent", func() bool { return sent.Load() == 2+tbin.HeaderSize+4 }) // two handshake answers and the echo

	must(t, srv.Bind(chA, tio.User("u")))
	must(t, srv.Bind(chA, tio.BsID("x")))
	must(t, srv.Bind(chB, tio.BsID("x"))) // moves: chA unbound from x
	_, _ = srv.Unbind(chB, tio.Group("lobby"))
	a.Close()
	if r := <-closed; r != channel.ReasonClosedByPeer {
		t.Fatalf("close reason %v", r)
	}
	tiotest.Eventually(t, "unbinds of the closed channel", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(evs) == 9
	})
	b.Close()
	<-closed
	mu.Lock()
	got := slices.Clone(evs)
	mu.Unlock()
	want := []ev{
		{tio.KindGroup, "lobby", true, chA.ID()},
		{tio.KindGroup, "lobby", true, chB.ID()},
		{tio.KindUser, "u", true, chA.ID()},
		{tio.KindBsID, "x", true, chA.ID()},
		{tio.KindBsID, "x", false, chA.ID()},
		{tio.KindBsID, "x", true, chB.ID()},
		{tio.KindGroup, "lobby", false, chB.ID()},
	}
	if !slices.Equal(got[:7], want) {
		t.Fatalf("events\n got %v\nwant %v", got[:7], want)
	}
	// The close of chA unbinds its user and its group, in some order.
	rest := got[7:9]
	slices.SortFunc(rest, func(x, y ev) int { return int(x.kind) - int(y.kind) })
	if !slices.Equal(rest, []ev{{tio.KindUser, "u", false, chA.ID()}, {tio.KindGroup, "lobby", false, chA.ID()}}) {
		t.Fatalf("close events %v", rest)
	}
	tiotest.Eventually(t, "b unbound", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(evs) == 10 && evs[9] == ev{tio.KindBsID, "x", false, chB.ID()}
	})
}

// Binds, unbinds, sends and closes from many goroutines at once, with
// clients that read everything, while connections come and go: run with
// -race. In the end every index is empty.
func TestBindSendCloseHammer(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{
		OnBind:   func(*channel.Channel, tio.Target) {},
		OnUnbind: func(*channel.Channel, tio.Target) {},
	})
	srv := p.srv
	const conns = 48
	var clients []net.Conn
	var chs []*channel.Channel
	var readers sync.WaitGroup
	for i := range conns {
		var c net.Conn
		var ch *channel.Channel
		if i%3 == 0 {
			wc, wch := p.ws()
			c, ch = wc.NetConn(), wch
		} else {
			bc, bch := p.bin()
			c, ch = bc.Conn, bch
		}
		clients = append(clients, c)
		chs = append(chs, ch)
		readers.Add(1)
		go func() { // drain until closed
			defer readers.Done()
			buf := make([]byte, 64<<10)
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	key := func(r *rand.Rand, prefix string) string { return fmt.Sprint(prefix, r.IntN(6)) }
	deadline := time.Now().Add(1500 * time.Millisecond)
	var workers sync.WaitGroup
	var sends, closes atomic.Int64
	for w := range 8 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			pk := &codec.Packet{Type: 3, Body: []byte("hammer")}
			for time.Now().Before(deadline) {
				ch := chs[r.IntN(len(chs))]
				switch r.IntN(16) {
				case 0:
					_ = srv.Bind(ch, tio.User(key(r, "u")))
				case 1:
					_ = srv.Bind(ch, tio.Group(key(r, "g")))
				case 2:
					_, _ = srv.Unbind(ch, tio.Group(key(r, "g")))
				case 3:
					_ = srv.Bind(ch, tio.Token(key(r, "t")))
				case 4:
					_ = srv.Bind(ch, tio.BsID(key(r, "b")))
				case 5:
					_, _ = srv.Unbind(ch, tio.All())
				case 6:
					_, _ = srv.Unbind(ch, tio.User(""))
				case 7:
					g := tio.Group(key(r, "g"))
					for _, uc := range srv.Channels(tio.User(key(r, "u"))) {
						_ = srv.Bind(uc, g)
					}
				case 8:
					g := tio.Group(key(r, "g"))
					for _, uc := range srv.Channels(tio.User(key(r, "u"))) {
						_, _ = srv.Unbind(uc, g)
					}
				case 9:
					_, _ = srv.Send(tio.Group(key(r, "g")), pk, tio.Exclude(ch))
					sends.Add(1)
				case 10:
					_, _ = srv.Send(tio.User(key(r, "u")), pk)
					_, _ = srv.Send(tio.Token(key(r, "t")), pk)
					_, _ = srv.Send(tio.BsID(key(r, "b")), pk)
				case 11:
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					_, _ = srv.SendWait(ctx, tio.Group(key(r, "g")), pk)
					cancel()
				case 12:
					_, _ = srv.Send(tio.All(), pk)
					_ = srv.Page(tio.Group(key(r, "g")), 1, 5)
					_ = srv.Bindings(ch).Groups
				case 13:
					if r.IntN(8) == 0 {
						n, _ := srv.Close(tio.User(key(r, "u")), channel.ReasonClosedByApp)
						closes.Add(int64(n))
					}
				case 14:
					_ = srv.Channels(tio.Group(key(r, "g")))
					_ = srv.Count(tio.User(key(r, "u")))
					_ = srv.Bindings(ch).InGroup(key(r, "g"))
				case 15:
					if r.IntN(8) == 0 { // the peer goes away
						clients[r.IntN(len(clients))].Close()
					}
				}
			}
		}()
	}
	workers.Wait()
	for _, c := range clients {
		c.Close()
	}
	readers.Wait()
	tiotest.Eventually(t, "all closed", func() bool { return srv.Count(tio.All()) == 0 })
	if got := srv.Stats().Bindings; got != (stats.Bindings{}) {
		t.Fatalf("indexes not empty after every close: %+v", got)
	}
	t.Logf("%d group sends, %d closes by user", sends.Load(), closes.Load())
}

// 5,000 connections bound to users, groups and tokens (binding in the
// connected hook, on the event loops, while they are accepted), all closed:
// every index ends empty.
func TestFiveThousandConnections(t *testing.T) {
	const n = 5000
	raiseNoFile(t, 2*n+200)
	var srvp atomic.Pointer[tio.Server]
	var bound, seq atomic.Int64
	srv := tio.NewServer("127.0.0.1:0", echoMux(), tio.WithHooks(tio.Hooks{
		OnConnected: func(ch *channel.Channel) {
			s := srvp.Load()
			i := seq.Add(1) // the i-th connection
			err := errors.Join(
				s.Bind(ch, tio.User(fmt.Sprint("u", i%1000))),
				s.Bind(ch, tio.Group(fmt.Sprint("g", i%50))),
				s.Bind(ch, tio.Group("everyone")),
				s.Bind(ch, tio.Token(fmt.Sprint("t", i%2000))),
				s.Bind(ch, tio.BsID(fmt.Sprint("b", i))),
			)
			if err == nil {
				bound.Add(1)
			}
		},
	}))
	srvp.Store(srv)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	begin := time.Now()

	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.DialTimeout("tcp", srv.Addr().String(), 10*time.Second)
				if err == nil {
					_, err = c.Write([]byte{tbin.TagHandshake})
				}
				if err == nil {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, err = c.Read(make([]byte, 1))
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("dial: %v", err)
	}
	tiotest.Eventually(t, "all bound", func() bool { return bound.Load() == n })
	sz := srv.Stats().Bindings
	if sz != (stats.Bindings{Users: 1000, Groups: 51, Tokens: 2000, BsIDs: n, IPs: 1, Bound: n}) || srv.Count(tio.Group("everyone")) != n || srv.Count(tio.IP(localhost)) != n {
		t.Fatalf("sizes %+v, everyone %d", sz, srv.Count(tio.Group("everyone")))
	}
	opened := time.Since(begin)
	res, err := srv.Send(tio.Group("everyone"), &codec.Packet{Type: 1, Body: []byte("hi")})
	if err != nil || res.OK != n {
		t.Fatalf("SendToGroup = %+v, %v", res, err)
	}
	for _, c := range conns {
		c.Close()
	}
	tiotest.EventuallyWithin(t, 20*time.Second, "all closed", func() bool { return srv.Count(tio.All()) == 0 })
	if got := srv.Stats().Bindings; got != (stats.Bindings{}) {
		t.Fatalf("indexes not empty: %+v", got)
	}
	if srv.Count(tio.Group("everyone")) != 0 || len(srv.Channels(tio.All())) != 0 || only(srv.Channels(tio.BsID("b1"))) != nil {
		t.Fatal("queries still see closed channels")
	}
	t.Logf("%d connections opened and bound in %v, all closed and unbound in %v", n, opened, time.Since(begin)-opened)
}

// raiseNoFile raises the soft limit of open files towards need (up to the
// hard limit) or skips the test.
func raiseNoFile(t testing.TB, need int) {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Skip(err)
	}
	if uint64(l.Cur) < uint64(need) {
		l.Cur = min(l.Max, asRlim(l.Cur, need))
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	if uint64(l.Cur) < uint64(need) {
		t.Skipf("needs %d open files, the limit is %d", need, l.Cur)
	}
}

// asRlim converts n to the type of syscall.Rlimit's fields, which are
// uint64 on Linux and macOS but int64 on FreeBSD.
func asRlim[T int64 | uint64](_ T, n int) T { return T(n) }

// only returns the one channel of chs, or nil.
func only(chs []*channel.Channel) *channel.Channel {
	if len(chs) != 1 {
		return nil
	}
	return chs[0]
}
