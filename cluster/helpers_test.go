package cluster_test

import (
	"bytes"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// The test protocol (binary packets): a client logs in, joins groups and
// asks its node to send, as an IM client would.
const (
	typeLogin = 1 // body: user id → Bind(ch, User)
	typeJoin  = 2 // body: group → Bind(ch, Group)
	typeToken = 3 // body: token → Bind(ch, Token)
	typeBsID  = 4 // body: business id → Bind(ch, BsID)
	typeSend  = 5 // body: target in text form, '\n', message → Send(target, typeMsg, Exclude(sender))
	typeMsg   = 6 // what receivers get
	typeAck   = 7 // the node's answer to a login, join, token, bsid or send
	typeClose = 8 // body: target in text form → Close(target)
)

// testNATS is a NATS server of the test's own, which it can stop and start
// again on the same port.
type testNATS struct {
	t    testing.TB
	port int
	s    *server.Server
}

func startNATS(t testing.TB) *testNATS {
	t.Helper()
	n := &testNATS{t: t, port: server.RANDOM_PORT}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *testNATS) start() {
	n.t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: n.port, NoSigs: true, NoLog: true})
	if err != nil {
		n.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(tiotest.Timeout) {
		n.t.Fatal("nats server not ready")
	}
	n.s = s
	n.port = s.Addr().(*net.TCPAddr).Port
}

func (n *testNATS) stop() {
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

func (n *testNATS) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// fast are connection options for tests: reconnect at once.
func fast() []nats.Option {
	return []nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectJitter(0, 0)}
}

// testConfig is a node's configuration for tests: quick heartbeats.
func testConfig(t testing.TB, id, url string) cluster.Config {
	return cluster.Config{
		URL: url, NodeID: id, NATSOptions: fast(),
		Heartbeat: 20 * time.Millisecond, TTL: 200 * time.Millisecond,
		Logger: tiotest.Logger(t),
	}
}

// node is a tio server that is a node of a cluster.
type node struct {
	*cluster.Node
	srv *tio.Server
	p   atomic.Pointer[tio.Server] // srv, for handlers on event loops
}

func newNode(t testing.TB, cfg cluster.Config, opts ...tio.Option) *node {
	t.Helper()
	cn, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{Node: cn}
	nd.srv = tiotest.NewServer(t, nd.mux(), append(cn.Options(), opts...)...)
	nd.p.Store(nd.srv)
	return nd
}

func (nd *node) mux() handler.Handler {
	mux := handler.NewMux()
	ack := func(ch *channel.Channel, err error) {
		body := []byte("ok")
		if err != nil {
			body = []byte(err.Error())
		}
		_ = ch.Send(&codec.Packet{Type: typeAck, Body: body})
	}
	bind := func(mk func(string) tio.Target) handler.Handler {
		return handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
			ack(ch, nd.p.Load().Bind(ch, mk(string(p.Body))))
		})
	}
	mux.Handle(typeLogin, bind(tio.User))
	mux.Handle(typeJoin, bind(tio.Group))
	mux.Handle(typeToken, bind(tio.Token))
	mux.Handle(typeBsID, bind(tio.BsID))
	mux.Handle(typeSend, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		to, msg, _ := bytes.Cut(p.Body, []byte("\n"))
		t, err := tio.ParseTarget(string(to))
		if err == nil {
			_, err = nd.p.Load().Send(t, &codec.Packet{Type: typeMsg, Body: msg}, tio.Exclude(ch))
		}
		ack(ch, err)
	}))
	mux.Handle(typeClose, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		t, err := tio.ParseTarget(string(p.Body))
		if err == nil {
			_, err = nd.p.Load().Close(t, channel.ReasonClosedByApp)
		}
		ack(ch, err)
	}))
	return mux
}

// client is a binary-protocol client of a node.
type client struct {
	*tiotest.BinaryConn
	t testing.TB
}

func dial(t testing.TB, nd *node) *client {
	t.Helper()
	return &client{tiotest.DialBinary(t, nd.srv), t}
}

func dialFrom(t testing.TB, nd *node, ip string) *client {
	t.Helper()
	return &client{tiotest.DialBinaryFrom(t, nd.srv, ip), t}
}

// do sends a request and expects its ack.
func (c *client) do(typ codec.Type, body string) {
	c.t.Helper()
	c.Send(typ, []byte(body))
	if p := c.Recv(); p.Type != typeAck || string(p.Body) != "ok" {
		c.t.Fatalf("request %d %q: answer %d %q", typ, body, p.Type, p.Body)
	}
}

// expect reads the next packet and checks it is the message msg.
func (c *client) expect(msg string) {
	c.t.Helper()
	if p := c.Recv(); p.Type != typeMsg || string(p.Body) != msg {
		c.t.Fatalf("got %d %q, want message %q", p.Type, p.Body, msg)
	}
}

// quiet checks that nothing arrives for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	if n, err := c.Read(b[:]); n > 0 || err == nil {
		c.t.Fatalf("unexpected byte %#x", b[0])
	}
}

// online waits until every node sees the user with conns connections.
func online(t testing.TB, user string, conns int, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		tiotest.Eventually(t, nd.ID()+" sees "+user, func() bool { return nd.Presence(user).Conns == conns })
	}
}

// meshed waits until every node sees every other one.
func meshed(t testing.TB, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		tiotest.Eventually(t, nd.ID()+" sees the others", func() bool { return len(nd.Nodes()) == len(nodes) })
	}
}
