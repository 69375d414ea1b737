package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// three starts three nodes on one NATS server.
func three(t *testing.T, ns *testNATS) (a, b, c *node) {
	t.Helper()
	a = newNode(t, testConfig(t, "a", ns.url()))
	b = newNode(t, testConfig(t, "b", ns.url()))
	c = newNode(t, testConfig(t, "c", ns.url()))
	meshed(t, a, b, c)
	return a, b, c
}

// A client on node A reaches a user on node C; a group spanning the three
// nodes gets each message exactly once per connection (and not the
// sender); tokens, business ids, IPs, everyone and closes cross nodes too;
// each send is one NATS publish.
func TestRelay(t *testing.T) {
	ns := startNATS(t)
	a, b, c := three(t, ns)

	alice := dial(t, a)
	alice.do(typeLogin, "alice")
	carol := dial(t, c)
	carol.do(typeLogin, "carol")
	carol2 := dial(t, c) // carol's second device
	carol2.do(typeLogin, "carol")
	online(t, "carol", 2, a, b, c)

	pub := a.Stats().Published
	alice.do(typeSend, "user:carol\nhi carol")
	carol.expect("hi carol")
	carol2.expect("hi carol")
	if got := a.Stats().Published - pub; got != 1 {
		t.Fatalf("a send to a user: %d NATS publishes", got)
	}

	// A room of two connections on each node.
	var room []*client
	for _, nd := range []*node{a, b, c} {
		for range 2 {
			cl := dial(t, nd)
			cl.do(typeJoin, "room")
			room = append(room, cl)
		}
	}
	pub = a.Stats().Published
	sender := room[0]
	sender.do(typeSend, "group:room\none")
	sender.do(typeSend, "group:room\ntwo")
	for _, cl := range room[1:] {
		cl.expect("one")
		cl.expect("two") // not "one" again: each message exactly once
	}
	if got := a.Stats().Published - pub; got != 2 {
		t.Fatalf("two sends to a room of six: %d NATS publishes", got)
	}
	alice.do(typeSend, "group:room\nthree") // Exclude(alice) excludes nobody in the room
	for _, cl := range room {
		cl.expect("three")
	}
	sender.quiet(50 * time.Millisecond) // the sender got neither of its own

	// Tokens, business ids.
	tok := dial(t, b)
	tok.do(typeToken, "t-1")
	bs := dial(t, c)
	bs.do(typeBsID, "order-9")
	alice.do(typeSend, "token:t-1\nto a token")
	tok.expect("to a token")
	alice.do(typeSend, "bsid:order-9\nto a business id")
	bs.expect("to a business id")

	// An IP (127.0.0.2 has connections on b and c).
	ip1, ip2 := dialFrom(t, b, "127.0.0.2"), dialFrom(t, c, "127.0.0.2")
	tiotest.Eventually(t, "connections from 127.0.0.2", func() bool {
		ip := tio.IP(netip.MustParseAddr("127.0.0.2"))
		return b.srv.Count(ip) == 1 && c.srv.Count(ip) == 1
	})
	if _, err := a.srv.Send(tio.IP(netip.MustParseAddr("127.0.0.2")), &codec.Packet{Type: typeMsg, Body: []byte("to an IP")}); err != nil {
		t.Fatal(err)
	}
	ip1.expect("to an IP")
	ip2.expect("to an IP")

	// Everyone, from b this time.
	if _, err := b.srv.Send(tio.All(), &codec.Packet{Type: typeMsg, Body: []byte("all")}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range append(room, alice, carol, carol2, tok, bs, ip1, ip2) {
		cl.expect("all")
	}

	// A close of a user on another node.
	alice.do(typeClose, "user:carol")
	for _, cl := range []*client{carol, carol2} {
		if code := cl.ExpectClose(); code != tbin.CloseNormal {
			t.Fatalf("carol's close code %d", code)
		}
	}
	online(t, "carol", 0, a, b, c)

	for _, nd := range []*node{a, b, c} {
		st := nd.Stats()
		if st.Own != 0 || st.Malformed != 0 || st.NewerVersion != 0 || st.Dropped != 0 || st.Failed != 0 || st.Lost != 0 {
			t.Errorf("%s: %+v", nd.ID(), st)
		}
	}
}

// Presence: where a user is online, on how many connections, cluster-wide
// counts; a node that stops says goodbye, one that is killed is forgotten
// within its TTL.
func TestPresence(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, testConfig(t, "a", ns.url()))
	cfgB := testConfig(t, "b", ns.url())
	cfgB.TTL = 10 * time.Minute // only its goodbye can make the others forget b within the test
	b := newNode(t, cfgB)
	c := newNode(t, testConfig(t, "c", ns.url()))
	meshed(t, a, b, c)
	for _, l := range []struct {
		nd   *node
		user string
	}{{a, "alice"}, {b, "alice"}, {b, "alice"}, {b, "bob"}, {c, "carol"}} {
		dial(t, l.nd).do(typeLogin, l.user)
	}
	online(t, "alice", 3, a, b, c)
	online(t, "bob", 1, a, b, c)
	online(t, "carol", 1, a, b, c)
	p := c.Presence("alice")
	if !p.Online() || p.Conns != 3 || len(p.Nodes) != 2 || p.Nodes[0] != (cluster.NodeConns{Node: "a", Conns: 1}) || p.Nodes[1] != (cluster.NodeConns{Node: "b", Conns: 2}) {
		t.Fatalf("alice: %+v", p)
	}
	if c.Online("nobody") || len(c.Presence("nobody").Nodes) != 0 {
		t.Fatal("nobody online")
	}
	want := cluster.Counts{Nodes: 3, Users: 3, Conns: 5}
	for _, nd := range []*node{a, b, c} {
		tiotest.Eventually(t, nd.ID()+"'s counts", func() bool { return nd.Counts() == want })
	}
	for _, ni := range a.Nodes() {
		if !ni.Synced || ni.Self != (ni.ID == "a") {
			t.Fatalf("a's nodes: %+v", a.Nodes())
		}
	}

	// b stops: its goodbye removes its presence at once.
	ctx, cancel := context.WithTimeout(context.Background(), tiotest.Timeout)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "b's goodbye", func() bool {
		return a.Presence("alice").Conns == 1 && !a.Online("bob") && len(a.Nodes()) == 2
	})
	if st := a.Stats(); st.Expired != 0 {
		t.Fatalf("b expired rather than left: %+v", st)
	}

	// c is killed: a forgets it when its TTL (200 ms) passes.
	c.Crash()
	tiotest.Eventually(t, "c forgotten", func() bool { return !a.Online("carol") })
	tiotest.Eventually(t, "c expired", func() bool { return a.Stats().Expired == 1 && len(a.Nodes()) == 1 })
	if got := a.Counts(); got != (cluster.Counts{Nodes: 1, Users: 1, Conns: 1}) {
		t.Fatalf("a alone: %+v", got)
	}
}

// A node that joins late learns the others' presence at once (it asks for
// their full state), and the others learn its own. The full state takes
// several messages under a small max payload.
func TestPresenceLateJoin(t *testing.T) {
	cfg := testConfig(t, "a", "")
	cfg.Listen, cfg.MaxPayload = "127.0.0.1:0", 2048
	cfg.Heartbeat, cfg.TTL = 50*time.Millisecond, time.Second
	a := newNode(t, cfg)
	for i := range 50 {
		dial(t, a).do(typeLogin, fmt.Sprintf("user-%02d-%s", i, strings.Repeat("x", 100)))
	}
	z := newNode(t, testConfig(t, "z", a.ClientURL()))
	dial(t, z).do(typeLogin, "zed")
	meshed(t, a, z)
	tiotest.Eventually(t, "z learns a's users", func() bool { return z.Counts().Users == 51 })
	online(t, "zed", 1, a)
	// z may have learned a's users from an update before a's full state
	// (asked for at z's start) arrived: synced a heartbeat later.
	tiotest.Eventually(t, "z synced", func() bool {
		for _, ni := range z.Nodes() {
			if !ni.Synced || (ni.ID == "a" && ni.Users != 50) {
				return false
			}
		}
		return true
	})
}

// NATS stops: sends fail fast (the local delivery still happens), never
// block; NATS comes back on the same port: the nodes reconnect, delivery
// and presence resume.
func TestOutage(t *testing.T) {
	ns := startNATS(t)
	a, b, c := three(t, ns)
	alice := dial(t, a)
	alice.do(typeLogin, "alice")
	local := dial(t, a)
	local.do(typeLogin, "carol") // carol has a connection on a too
	carol := dial(t, c)
	carol.do(typeLogin, "carol")
	online(t, "carol", 2, a, b, c)

	ns.stop()
	for _, nd := range []*node{a, b, c} {
		tiotest.Eventually(t, nd.ID()+" disconnected", func() bool { return !nd.Stats().Connected })
	}
	var worst time.Duration
	for i := range 100 {
		start := time.Now()
		res, err := a.srv.Send(tio.User("carol"), &codec.Packet{Type: typeMsg, Body: []byte("during")})
		worst = max(worst, time.Since(start))
		if !errors.Is(err, tio.ErrRelay) || !errors.Is(err, cluster.ErrUnavailable) || res.OK != 1 {
			t.Fatalf("send %d during the outage: %+v, %v", i, res, err)
		}
	}
	if worst > time.Second { // failing fast: Publish never waits for NATS
		t.Fatalf("a send during the outage took %v", worst)
	}
	for range 100 {
		local.expect("during")
	}
	if st := a.Stats(); st.Failed < 100 {
		t.Fatalf("failures not counted: %+v", st)
	}
	// A send from an inline handler (on an event loop) fails fast too.
	alice.Send(typeSend, []byte("user:carol\nfrom a loop"))
	if p := alice.Recv(); !strings.Contains(string(p.Body), "NATS unavailable") {
		t.Fatalf("answer during the outage: %q", p.Body)
	}
	local.expect("from a loop")

	ns.start()
	for _, nd := range []*node{a, b, c} {
		tiotest.Eventually(t, nd.ID()+" reconnected", func() bool { return nd.Stats().Connected })
	}
	meshed(t, a, b, c)
	online(t, "carol", 2, a, b, c)
	alice.do(typeSend, "user:carol\nafter")
	local.expect("after")
	carol.expect("after") // nothing from during the outage came late
	for _, nd := range []*node{a, b, c} {
		if st := nd.Stats(); st.Reconnects == 0 || st.Disconnects == 0 {
			t.Fatalf("%s: %+v", nd.ID(), st)
		}
	}
}

// A message of a newer version is dropped and counted; so is a malformed
// one; the node goes on.
func TestNewerVersionDropped(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, testConfig(t, "a", ns.url()))
	carol := dial(t, a)
	carol.do(typeLogin, "carol")

	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	target, _ := tio.User("carol").AppendBinary(nil)
	v2 := append([]byte{cluster.Version + 1, byte(tio.RelaySend), 1, 'x'}, target...)
	v2 = append(v2, 0, typeMsg, 'n', 'e', 'w')
	v1 := append([]byte{cluster.Version, byte(tio.RelaySend), 1, 'x'}, target...)
	v1 = append(v1, 0, typeMsg, 'o', 'l', 'd')
	must(t, nc.Publish("tio.relay.user", v2))
	must(t, nc.Publish("tio.presence", []byte{cluster.Version + 1, 1}))
	must(t, nc.Publish("tio.relay.user", []byte{cluster.Version, 9}))
	must(t, nc.Publish("tio.relay.user", v1))
	must(t, nc.Flush())
	carol.expect("old")
	tiotest.Eventually(t, "counted", func() bool { return a.Stats().Delivered == 1 })
	if st := a.Stats(); st.NewerVersion != 2 || st.Malformed != 1 || st.Received != 1 {
		t.Fatalf("%+v", st)
	}
}

// Kinds switched off stay on their node, both ways.
func TestKinds(t *testing.T) {
	ns := startNATS(t)
	cfg := testConfig(t, "a", ns.url())
	cfg.Kinds = []tio.TargetKind{tio.KindUser}
	a := newNode(t, cfg)
	cfg = testConfig(t, "b", ns.url())
	cfg.Kinds = []tio.TargetKind{tio.KindUser}
	b := newNode(t, cfg)
	full := newNode(t, testConfig(t, "full", ns.url())) // relays every kind
	meshed(t, a, b, full)
	ua := dial(t, a)
	ua.do(typeJoin, "room")
	ub := dial(t, b)
	ub.do(typeJoin, "room")
	ub.do(typeLogin, "bob")
	online(t, "bob", 1, a)

	ua.do(typeSend, "group:room\nlocal only")
	ua.do(typeSend, "user:bob\nto bob")
	ub.expect("to bob") // not "local only"
	if st := a.Stats(); st.Published != 1 {
		t.Fatalf("a published %d messages, want 1 (the user send)", st.Published)
	}
	if _, err := full.srv.Send(tio.Group("room"), &codec.Packet{Type: typeMsg, Body: []byte("from full")}); err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "b ignored a group send", func() bool { return b.Stats().Ignored == 1 })
	ub.quiet(20 * time.Millisecond)
}

// What NATS delivers faster than a node's server takes it is bounded by
// the pending limits: the excess is dropped and counted, the node goes on.
func TestSlowConsumer(t *testing.T) {
	ns := startNATS(t)
	cfg := testConfig(t, "slow", ns.url())
	cfg.PendingMsgs = 10
	slow, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &stuckLocal{release: make(chan struct{})}
	must(t, slow.Start(l))
	defer func() { _ = slow.Stop(context.Background()) }()
	fast := newNode(t, testConfig(t, "fast", ns.url()))
	for range 200 {
		if _, err := fast.srv.Send(tio.Group("g"), &codec.Packet{Type: 1, Body: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	tiotest.Eventually(t, "all published", func() bool { return fast.Stats().Published == 200 })
	// One message in the stuck Send, at most 10 pending: the rest dropped.
	tiotest.Eventually(t, "drops counted", func() bool { return slow.Stats().Dropped >= 200-11 })
	close(l.release)
	tiotest.Eventually(t, "the rest delivered", func() bool {
		st := slow.Stats()
		return st.Received+st.Dropped == 200
	})
	if got := l.sends(); got > 11 {
		t.Fatalf("%d sends delivered past a pending limit of 10", got)
	}
}

// stuckLocal is a server that takes its first relayed send only once
// released (a Local never blocks; this one stands for a node whose server
// is slower than NATS).
type stuckLocal struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (l *stuckLocal) Send(tio.Target, *codec.Packet) (tio.SendResult, error) {
	<-l.release
	l.mu.Lock()
	l.n++
	l.mu.Unlock()
	return tio.SendResult{}, nil
}
func (l *stuckLocal) Close(tio.Target, channel.Reason, string) (int, error) { return 0, nil }
func (l *stuckLocal) sends() int                                            { l.mu.Lock(); defer l.mu.Unlock(); return l.n }

// Limits are refused fast: a message over NATS's max payload (not
// chunked), a full outbound queue.
func TestRefused(t *testing.T) {
	cfg := testConfig(t, "small", "")
	cfg.MaxPayload = 1024
	small := newNode(t, cfg)
	big := &codec.Packet{Type: 1, Body: make([]byte, 1024)}
	if _, err := small.srv.Send(tio.All(), big); !errors.Is(err, tio.ErrRelay) || !errors.Is(err, cluster.ErrTooBig) {
		t.Fatalf("a message over the max payload: %v", err)
	}
	cfg = testConfig(t, "tiny", "")
	cfg.MaxOutbound = 1
	tiny := newNode(t, cfg)
	if _, err := tiny.srv.Send(tio.All(), &codec.Packet{Type: 1}); !errors.Is(err, cluster.ErrBackpressure) {
		t.Fatalf("a send over MaxOutbound: %v", err)
	}
	if st := tiny.Stats(); st.Failed != 1 || st.Published != 0 {
		t.Fatalf("%+v", st)
	}
}

// The zero Config is a node on its own embedded server: presence works,
// sends work; a node with Listen lets others join.
func TestEmbedded(t *testing.T) {
	solo := newNode(t, cluster.Config{Logger: tiotest.Logger(t)})
	if solo.ClientURL() != "" {
		t.Fatalf("a server that does not listen has a URL: %q", solo.ClientURL())
	}
	u := dial(t, solo)
	u.do(typeLogin, "u")
	tiotest.Eventually(t, "presence", func() bool { return solo.Online("u") && solo.Presence("u").Conns == 1 })
	u2 := dial(t, solo)
	u2.do(typeSend, "user:u\nhi")
	u.expect("hi")

	cfg := testConfig(t, "host", "")
	cfg.Listen = "127.0.0.1:0"
	host := newNode(t, cfg)
	url := host.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL %q", url)
	}
	guest := newNode(t, testConfig(t, "guest", url))
	meshed(t, host, guest)
	g := dial(t, guest)
	g.do(typeLogin, "g")
	h := dial(t, host)
	h.do(typeSend, "user:g\nwelcome")
	g.expect("welcome")
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  cluster.Config
		want string
	}{
		{"listen and url", cluster.Config{URL: "nats://x:4222", Listen: ":4222"}, "Listen"},
		{"listen", cluster.Config{Listen: "nowhere"}, "Listen"},
		{"port", cluster.Config{Listen: "127.0.0.1:99999"}, "port"},
		{"url", cluster.Config{URL: "nats://x:1,,nats://y:2"}, "empty server"},
		{"node id", cluster.Config{NodeID: "a b"}, "NodeID"},
		{"long node id", cluster.Config{NodeID: strings.Repeat("n", 65)}, "NodeID"},
		{"prefix", cluster.Config{Prefix: "tio.*"}, "Prefix"},
		{"prefix dots", cluster.Config{Prefix: "a..b"}, "Prefix"},
		{"kinds", cluster.Config{Kinds: []tio.TargetKind{tio.KindID}}, "Kinds"},
		{"ttl", cluster.Config{Heartbeat: time.Second, TTL: time.Second}, "TTL"},
		{"negative", cluster.Config{MaxOutbound: -1}, "MaxOutbound"},
		{"nil option", cluster.Config{NATSOptions: []nats.Option{nil}}, "NATSOptions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := cluster.New(c.cfg)
			if !errors.Is(err, cluster.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v; want ErrConfig mentioning %q", err, c.want)
			}
		})
	}
	// What only a start can tell is returned by the server's Start.
	cn, err := cluster.New(cluster.Config{URL: "nats://127.0.0.1:1", NATSOptions: []nats.Option{nats.Timeout(100 * time.Millisecond)}, Logger: tiotest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := tio.NewServer("127.0.0.1:0", handler.NewMux(), cn.Options()...)
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		_ = srv.Shutdown(context.Background())
		t.Fatalf("Start with no NATS server = %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A close relayed to another node says the application's words: a
// WebSocket user there gets them in its close frame.
func TestRelayedCloseText(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, testConfig(t, "a", ns.url()))
	b := newNode(t, testConfig(t, "b", ns.url()))
	meshed(t, a, b)
	w := tiotest.DialWebSocket(t, b.srv, "/")
	w.SendBinary(append([]byte{typeLogin}, "dave"...)) // default mapping: the first byte is the type
	if _, msg := w.Recv(); len(msg) == 0 || msg[0] != typeAck || string(msg[1:]) != "ok" {
		t.Fatalf("login answered %q", msg)
	}
	online(t, "dave", 1, a, b)
	if _, err := a.srv.Close(tio.User("dave"), channel.ReasonClosedByApp, tio.CloseText("kicked by an admin")); err != nil {
		t.Fatal(err)
	}
	if got := w.ExpectClose(); got.Code != ws.StatusNormalClosure || got.Reason != "kicked by an admin" {
		t.Fatalf("close %+v, want 1000 \"kicked by an admin\"", got)
	}
}
