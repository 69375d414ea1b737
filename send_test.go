package tio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// countingCodec counts the packets a codec encodes.
type countingCodec struct {
	codec.Codec
	encodes atomic.Int64
}

func (c *countingCodec) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	c.encodes.Add(1)
	return c.Codec.Encode(dst, p)
}

func (c *countingCodec) Sniff(first []byte) codec.Match {
	return c.Codec.(codec.Sniffer).Sniff(first)
}

// A receiver of packet bodies, over WebSocket (default mapping: a binary
// message is the type byte and the body) or the binary protocol.
type receiver interface {
	// next returns the next packet's type and body.
	next(t testing.TB) (codec.Type, string)
}

type wsRecv struct{ *websocket.Conn }

func (r wsRecv) next(t testing.TB) (codec.Type, string) {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	op, m, err := r.ReadMessage()
	if err != nil {
		t.Fatalf("ws read: %v", err)
	}
	if op == websocket.TextMessage {
		return tws.TypeText, string(m)
	}
	return codec.Type(m[0]), string(m[1:])
}

type binRecv struct{ *tiotest.BinaryConn }

func (r binRecv) next(t testing.TB) (codec.Type, string) {
	t.Helper()
	p := r.Recv()
	return p.Type, string(p.Body)
}

// expectOnly checks that, after a send, exactly the receivers in want got
// body: a marker then sent to everyone must be the next packet of the
// others.
func expectOnly(t testing.TB, srv *tio.Server, all map[string]receiver, body string, want ...string) {
	t.Helper()
	if _, err := srv.Send(tio.All(), &codec.Packet{Type: 99, Body: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	for name, r := range all {
		typ, got := r.next(t)
		if slicesContains(want, name) {
			if typ != 5 || got != body {
				t.Fatalf("%s got %d %q, want 5 %q", name, typ, got, body)
			}
			typ, got = r.next(t)
		}
		if typ != 99 || got != "marker" {
			t.Fatalf("%s got %d %q, want the marker (it should not have received %q)", name, typ, got, body)
		}
	}
}

func slicesContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// A group mixing WebSocket and binary-protocol members receives the same
// packet, each member in its own protocol, from one encoding per codec; the
// filter leaves the sender out.
func TestSendToMixedGroupEncodesOncePerCodec(t *testing.T) {
	ws := &countingCodec{Codec: tws.New(tws.Config{})}
	bin := &countingCodec{Codec: tbin.New(tbin.Config{})}
	p := newPeers(t, echoMux(), tio.Hooks{}, tio.WithCodecs(ws, bin))
	all := map[string]receiver{}
	var sender *channel.Channel
	for i := range 6 {
		var ch *channel.Channel
		if i%2 == 0 {
			c, wch := p.ws()
			all[fmt.Sprint("ws", i)], ch = wsRecv{c}, wch
		} else {
			c, bch := p.bin()
			all[fmt.Sprint("bin", i)], ch = binRecv{c}, bch
		}
		must(t, p.srv.Bind(ch, tio.Group("room")))
		if i == 1 {
			sender = ch
		}
	}
	before := ws.encodes.Load() + bin.encodes.Load()
	res, err := p.srv.Send(tio.Group("room"), &codec.Packet{Type: 5, Body: []byte("hello")}, tio.Exclude(sender))
	if err != nil || res != (tio.SendResult{OK: 5}) {
		t.Fatalf("SendToGroup = %+v, %v", res, err)
	}
	if ws.encodes.Load() != 1 || bin.encodes.Load() != 1 || before != 0 {
		t.Fatalf("encodes: websocket %d, binary %d (before %d), want 1 each", ws.encodes.Load(), bin.encodes.Load(), before)
	}
	expectOnly(t, p.srv, all, "hello", "ws0", "ws2", "ws4", "bin3", "bin5")
}

// Every kind of target, with and without filters.
func TestSendTargets(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{})
	srv := p.srv
	a1c, a1 := p.bin()
	a2c, a2 := p.ws()
	bc, b := p.bin()
	cc, c := p.binFrom("127.0.0.2")
	all := map[string]receiver{"a1": binRecv{a1c}, "a2": wsRecv{a2c}, "b": binRecv{bc}, "c": binRecv{cc}}
	must(t, srv.Bind(a1, tio.User("a")))
	must(t, srv.Bind(a2, tio.User("a")))
	must(t, srv.Bind(b, tio.User("b")))
	must(t, srv.Bind(a2, tio.Token("tok")))
	must(t, srv.Bind(c, tio.Token("tok")))
	must(t, srv.Bind(b, tio.BsID("order")))
	pk := func(s string) *codec.Packet { return &codec.Packet{Type: 5, Body: []byte(s)} }
	check := func(res tio.SendResult, err error, ok int) {
		t.Helper()
		if err != nil || res != (tio.SendResult{OK: ok}) {
			t.Fatalf("result %+v, %v; want %d OK", res, err, ok)
		}
	}

	res, err := srv.Send(tio.User("a"), pk("user"))
	check(res, err, 2)
	expectOnly(t, srv, all, "user", "a1", "a2")

	res, err = srv.Send(tio.User("a"), pk("user but a2"), tio.Exclude(a2))
	check(res, err, 1)
	expectOnly(t, srv, all, "user but a2", "a1")

	res, err = srv.Send(tio.Token("tok"), pk("token"))
	check(res, err, 2)
	expectOnly(t, srv, all, "token", "a2", "c")

	res, err = srv.Send(tio.BsID("order"), pk("bsid"))
	check(res, err, 1)
	expectOnly(t, srv, all, "bsid", "b")

	res, err = srv.Send(tio.IP(netip.MustParseAddr("127.0.0.2")), pk("ip"))
	check(res, err, 1)
	expectOnly(t, srv, all, "ip", "c")

	res, err = srv.Send(tio.IP(localhost), pk("ip1"), func(ch *channel.Channel) bool { return srv.Bindings(ch).User == "a" })
	check(res, err, 2)
	expectOnly(t, srv, all, "ip1", "a1", "a2")

	res, err = srv.Send(tio.Of([]*channel.Channel{b, c}...), pk("set"))
	check(res, err, 2)
	expectOnly(t, srv, all, "set", "b", "c")

	res, err = srv.Send(tio.ID(a2.ID()), pk("id"))
	check(res, err, 1)
	expectOnly(t, srv, all, "id", "a2")

	res, err = srv.Send(tio.All(), pk("all but b"), tio.Exclude(b))
	check(res, err, 3)
	expectOnly(t, srv, all, "all but b", "a1", "a2", "c")

	res, err = srv.Send(tio.User("nobody"), pk("x"))
	check(res, err, 0)
	res, err = srv.Send(tio.ID(1<<60), pk("x"))
	check(res, err, 0)

	// Blocking forms, same targets.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err = srv.SendWait(ctx, tio.User("a"), pk("b-user"))
	check(res, err, 2)
	expectOnly(t, srv, all, "b-user", "a1", "a2")
	res, err = srv.SendWait(ctx, tio.Token("tok"), pk("b-token"), tio.Exclude(c))
	check(res, err, 1)
	expectOnly(t, srv, all, "b-token", "a2")
	res, err = srv.SendWait(ctx, tio.BsID("order"), pk("b-bsid"))
	check(res, err, 1)
	expectOnly(t, srv, all, "b-bsid", "b")
	res, err = srv.SendWait(ctx, tio.IP(netip.MustParseAddr("127.0.0.2")), pk("b-ip"))
	check(res, err, 1)
	expectOnly(t, srv, all, "b-ip", "c")
	res, err = srv.SendWait(ctx, tio.Of([]*channel.Channel{a1, c}...), pk("b-set"))
	check(res, err, 2)
	expectOnly(t, srv, all, "b-set", "a1", "c")
	res, err = srv.SendWait(ctx, tio.ID(b.ID()), pk("b-id"))
	check(res, err, 1)
	expectOnly(t, srv, all, "b-id", "b")
	res, err = srv.SendWait(ctx, tio.All(), pk("b-all"))
	check(res, err, 4)
	expectOnly(t, srv, all, "b-all", "a1", "a2", "b", "c")
	must(t, srv.Bind(a1, tio.Group("g")))
	res, err = srv.SendWait(ctx, tio.Group("g"), pk("b-group"))
	check(res, err, 1)
	expectOnly(t, srv, all, "b-group", "a1")
}

// A blocking send returns once every target's loop wrote the bytes, and
// counts the targets that failed: a closed channel, a closing one, and, when
// the context ends first, those whose writes were not confirmed in time.
func TestBlockingSendResult(t *testing.T) {
	block := make(chan struct{})
	blocked := make(chan struct{}, 1)
	mux := echoMux()
	mux.Handle(9, handler.InlineFunc(func(*channel.Channel, *codec.Packet) { // holds the only event loop
		blocked <- struct{}{}
		<-block
	}))
	p := newPeers(t, mux, tio.Hooks{}, tio.WithEventLoops(1))
	srv := p.srv
	var clients []*tiotest.BinaryConn
	var chs []*channel.Channel
	for range 4 {
		c, ch := p.bin()
		must(t, srv.Bind(ch, tio.Group("g")))
		clients, chs = append(clients, c), append(chs, ch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := make([]uint64, len(chs))
	for i, ch := range chs {
		out[i] = ch.Stats().BytesOut
	}
	res, err := srv.SendWait(ctx, tio.Group("g"), &codec.Packet{Type: 5, Body: []byte("sync")})
	if err != nil || res != (tio.SendResult{OK: 4}) {
		t.Fatalf("BSendToGroup = %+v, %v", res, err)
	}
	for i, ch := range chs {
		if got := ch.Stats().BytesOut - out[i]; got < tbin.HeaderSize+4 {
			t.Fatalf("target %d: %d bytes written when BSend returned", i, got)
		}
		if p := clients[i].Recv(); string(p.Body) != "sync" {
			t.Fatalf("target %d got %q", i, p.Body)
		}
	}

	// A channel that closed (the peer left) is no longer among the channels
	// its id names; one that is closing (closed by the application a moment
	// ago) is, and fails; the others succeed.
	clients[0].Close()
	tiotest.Eventually(t, "target 0 closed", func() bool { return chs[0].Closed() })
	chs[1].Close(channel.ReasonClosedByApp)
	res, err = srv.SendWait(ctx, tio.Of(chs...), &codec.Packet{Type: 5, Body: []byte("two")})
	if err != nil || res.OK != 2 || res.Failed > 1 { // the closing one may have closed by now
		t.Fatalf("SendWait to ids with a closed and a closing channel = %+v, %v", res, err)
	}
	for _, c := range clients[2:] {
		if p := c.Recv(); string(p.Body) != "two" {
			t.Fatalf("got %q", p.Body)
		}
	}
	res, err = srv.Send(tio.Of(chs[:1]...), &codec.Packet{Type: 5})
	if err != nil || res != (tio.SendResult{}) {
		t.Fatalf("Send to the id of a closed channel = %+v, %v; want no target", res, err)
	}

	// The event loop is busy: the blocking send gives up when its context
	// ends and counts the unconfirmed targets as failed.
	clients[2].Send(9, nil)
	<-blocked
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	begin := time.Now()
	res, err = srv.SendWait(short, tio.Of(chs[2:]...), &codec.Packet{Type: 5, Body: []byte("late")})
	if !errors.Is(err, context.DeadlineExceeded) || res != (tio.SendResult{Failed: 2}) {
		t.Fatalf("BSend on a blocked loop = %+v, %v", res, err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("BSend took %v past its deadline", d)
	}
	close(block)
	// Queued bytes are still delivered once the loop is free.
	for _, c := range clients[2:] {
		if p := c.Recv(); string(p.Body) != "late" {
			t.Fatalf("got %q", p.Body)
		}
	}
}

// Close by user, group, token, IP and set: each channel records the reason,
// the peer is told (WebSocket close 1000, binary close frame), and the
// server counts the closes by reason.
func TestCloseByBinding(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{})
	srv := p.srv
	ubin, u1 := p.bin()
	uws, u2 := p.ws()
	g1c, g1 := p.bin()
	g2c, g2 := p.bin()
	tc, tch := p.bin()
	ipc, ipch := p.binFrom("127.0.0.2")
	s1c, s1 := p.bin()
	keepc, keep := p.bin()
	must(t, srv.Bind(u1, tio.User("u")))
	must(t, srv.Bind(u2, tio.User("u")))
	must(t, srv.Bind(g1, tio.Group("g")))
	must(t, srv.Bind(g2, tio.Group("g")))
	must(t, srv.Bind(keep, tio.Group("g")))
	must(t, srv.Bind(tch, tio.Token("t")))

	if n, _ := srv.Close(tio.User("u"), channel.ReasonClosedByApp); n != 2 {
		t.Fatalf("CloseUser = %d", n)
	}
	if rest := tiotest.ExpectClosed(t, ubin); !bytes.Equal(rest, []byte{tbin.TagClose, tbin.CloseNormal}) {
		t.Fatalf("binary farewell % x", rest)
	}
	if _, _, err := uws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("ws got %v, want close 1000", err)
	}
	if n, _ := srv.Close(tio.Group("g"), channel.ReasonOverloaded, tio.Exclude(keep)); n != 2 {
		t.Fatalf("CloseGroup = %d", n)
	}
	if n, _ := srv.Close(tio.Token("t"), channel.ReasonRateLimited); n != 1 {
		t.Fatalf("CloseToken = %d", n)
	}
	if n, _ := srv.Close(tio.IP(netip.MustParseAddr("127.0.0.2")), channel.ReasonTooManyConnections); n != 1 {
		t.Fatalf("CloseIP = %d", n)
	}
	if n, _ := srv.Close(tio.Of(s1), channel.ReasonHeartbeatTimeout); n != 1 {
		t.Fatalf("CloseSet = %d", n)
	}
	for _, c := range []*tiotest.BinaryConn{g1c, g2c, tc, ipc, s1c} {
		tiotest.ExpectClosed(t, c)
	}
	for ch, want := range map[*channel.Channel]channel.Reason{
		u1: channel.ReasonClosedByApp, u2: channel.ReasonClosedByApp,
		g1: channel.ReasonOverloaded, g2: channel.ReasonOverloaded,
		tch: channel.ReasonRateLimited, ipch: channel.ReasonTooManyConnections, s1: channel.ReasonHeartbeatTimeout,
	} {
		if r, _ := ch.Reason(); r != want {
			t.Fatalf("%v closed for %v, want %v", ch, r, want)
		}
	}
	tiotest.Eventually(t, "closes counted", func() bool {
		c := srv.Stats().Closed
		return c[channel.ReasonClosedByApp] == 2 && c[channel.ReasonOverloaded] == 2 && c[channel.ReasonRateLimited] == 1 &&
			c[channel.ReasonTooManyConnections] == 1 && c[channel.ReasonHeartbeatTimeout] == 1
	})
	// The survivor still works and is the group's only member.
	if srv.Count(tio.Group("g")) != 1 || srv.Count(tio.All()) != 1 {
		t.Fatalf("group %d, open %d", srv.Count(tio.Group("g")), srv.Count(tio.All()))
	}
	keepc.Send(1, []byte("still here"))
	if p := keepc.Recv(); string(p.Body) != "still here" {
		t.Fatalf("got %q", p.Body)
	}
}

// A chat room: clients join groups and speak to the other members.
func ExampleServer_Send() {
	var srv *tio.Server
	mux := handler.NewMux()
	// A text message "join:ROOM" joins a room; any other is said to the
	// rooms of the sender, whom the filter leaves out.
	mux.Handle(tws.TypeText, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		if room, ok := strings.CutPrefix(string(p.Body), "join:"); ok {
			_ = srv.Bind(ch, tio.Group(room))
			_ = ch.Send(&codec.Packet{Type: tws.TypeText, Body: []byte("joined " + room)})
			return
		}
		for _, room := range srv.Bindings(ch).Groups {
			msg := &codec.Packet{Type: tws.TypeText, Body: fmt.Appendf(nil, "%s: %s", room, p.Body)}
			_, _ = srv.Send(tio.Group(room), msg, tio.Exclude(ch))
		}
	}))
	srv = tio.NewServer("127.0.0.1:0", mux)
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	join := func(room string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/chat", nil)
		if err != nil {
			panic(err)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("join:"+room))
		_, m, _ := c.ReadMessage()
		fmt.Println(string(m))
		return c
	}
	ann, bob, cid := join("go"), join("go"), join("rust")
	defer ann.Close()
	defer bob.Close()
	defer cid.Close()

	_ = ann.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, m, _ := bob.ReadMessage()
	fmt.Println("bob got:", string(m))
	fmt.Println("members of go:", srv.Count(tio.Group("go")), "of rust:", srv.Count(tio.Group("rust")))
	// Output:
	// joined go
	// joined go
	// joined rust
	// bob got: go: hello
	// members of go: 2 of rust: 1
}
