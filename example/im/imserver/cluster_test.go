package imserver_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/example/im/imserver"
	"github.com/tiogo/tio/tiotest"
)

// imNode is a chat server that is a node of a cluster.
type imNode struct {
	*imserver.Server
	node *cluster.Node
	net  *cutter
}

// cutter dials NATS for a node and can cut it off for good: the node is
// then dead to the others (no heartbeat, no goodbye), as if its machine had
// gone.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (c *cutter) Dial(network, address string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, errors.New("cut off")
	}
	conn, err := net.DialTimeout(network, address, tiotest.Timeout)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for _, conn := range c.conns {
		conn.Close()
	}
}

// startCluster starts n chat servers, nodes "a", "b", … of one cluster: a
// embeds the NATS server (listening on a port of 127.0.0.1), the others
// join it over TCP. Heartbeats are 100 ms; a node that dies is forgotten
// after a TTL of 1 s.
func startCluster(t *testing.T, n int, opts ...imserver.Option) []*imNode {
	t.Helper()
	var nodes []*imNode
	for i := range n {
		cfg := cluster.Config{
			NodeID: string(rune('a' + i)), Heartbeat: 100 * time.Millisecond, TTL: time.Second,
			Logger: tiotest.Logger(t),
		}
		if i == 0 {
			cfg.Listen = "127.0.0.1:0"
		} else {
			cfg.URL = nodes[0].node.ClientURL()
		}
		cut := &cutter{}
		cfg.NATSOptions = []nats.Option{nats.SetCustomDialer(cut), nats.ReconnectWait(20 * time.Millisecond)}
		node, err := cluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := start(t, append([]imserver.Option{imserver.WithCluster(node)}, opts...)...)
		nodes = append(nodes, &imNode{Server: srv, node: node, net: cut})
	}
	for _, nd := range nodes {
		tiotest.Eventually(t, nd.node.ID()+" sees every node", func() bool { return len(nd.node.Nodes()) == n })
	}
	return nodes
}

var barriers atomic.Int64

// barrier returns once the nodes to have applied every roster change that
// from made before: from enters a roster of its own, which reaches them
// after the changes before it (a node's roster messages arrive in order).
func barrier(t *testing.T, from *imNode, to ...*imNode) {
	t.Helper()
	name := "barrier-" + strconv.FormatInt(barriers.Add(1), 10)
	from.node.Enter(name, "x")
	for _, nd := range to {
		tiotest.Eventually(t, nd.node.ID()+" passes "+name, func() bool { return nd.node.InRoster(name, "x") })
	}
	from.node.Exit(name, "x")
}

// converged waits until every node lists want as room's users.
func converged(t *testing.T, room string, want []string, nodes ...*imNode) {
	t.Helper()
	for _, nd := range nodes {
		tiotest.Eventually(t, fmt.Sprintf("%s lists %v in %s", nd.node.ID(), want, room), func() bool {
			return slices.Equal(nd.Online(room), want)
		})
	}
}

// online waits until every node's presence has user with conns connections.
func online(t *testing.T, user string, conns int, nodes ...*imNode) {
	t.Helper()
	for _, nd := range nodes {
		tiotest.Eventually(t, nd.node.ID()+" sees "+user, func() bool { return nd.node.Presence(user).Conns == conns })
	}
}

func (c *client) expectMember(event, user string) {
	c.t.Helper()
	if e := c.expect(event); e.str("user") != user {
		c.t.Fatalf("got %v, want %s %s", e, event, user)
	}
}

func (c *client) expectText(event, text string) ev {
	c.t.Helper()
	e := c.expect(event)
	if e.str("text") != text {
		c.t.Fatalf("got %v, want %s %q", e, event, text)
	}
	return e
}

func (c *client) users(e ev) []string {
	var us []string
	for _, u := range e["users"].([]any) {
		us = append(us, u.(string))
	}
	return us
}

// A room spans three nodes: each connection gets each message once, the
// user's tabs on other nodes included; joined goes out when a user enters
// the room anywhere, left when their last tab anywhere leaves it (not when
// one of two tabs on two nodes does); typing skips the typist's tabs on
// every node; who and rooms count the cluster's users.
func TestClusterRoom(t *testing.T) {
	ns := startCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]

	alice := login(t, a.Server, "alice")
	if _, on := alice.join("lobby"); !slices.Equal(on, []string{"alice"}) {
		t.Fatalf("online %v", on)
	}
	converged(t, "lobby", []string{"alice"}, b)
	bob := login(t, b.Server, "bob")
	if _, on := bob.join("lobby"); !slices.Equal(on, []string{"alice", "bob"}) {
		t.Fatalf("online %v", on)
	}
	alice.expectMember("joined", "bob") // from a's view of b's roster
	converged(t, "lobby", []string{"alice", "bob"}, c)
	carol := login(t, c.Server, "carol")
	if _, on := carol.join("lobby"); !slices.Equal(on, []string{"alice", "bob", "carol"}) {
		t.Fatalf("online %v", on)
	}
	alice.expectMember("joined", "carol")
	bob.expectMember("joined", "carol")

	// Each message once, in order; not to the sender.
	alice.send(`{"cmd":"say","room":"lobby","text":"one","ref":"1"}`)
	alice.send(`{"cmd":"say","room":"lobby","text":"two","ref":"2"}`)
	a1, a2 := alice.expect("ack"), alice.expect("ack")
	for _, cl := range []*client{bob, carol} {
		if m := cl.expectText("message", "one"); m["id"] != a1["id"] || m.str("from") != "alice" {
			t.Fatalf("%v, ack %v", m, a1)
		}
		if m := cl.expectText("message", "two"); m["id"] != a2["id"] {
			t.Fatalf("%v, ack %v", m, a2)
		}
	}
	alice.quiet()

	// bob's second tab, on a: bob is in the room already, nobody is told.
	bob2 := login(t, a.Server, "bob")
	if _, on := bob2.join("lobby"); !slices.Equal(on, []string{"alice", "bob", "carol"}) {
		t.Fatalf("online %v", on)
	}
	barrier(t, a, b, c)
	alice.quiet()
	bob.quiet()
	carol.quiet()
	alice.send(`{"cmd":"say","room":"lobby","text":"three"}`)
	alice.expect("ack")
	for _, cl := range []*client{bob, bob2, carol} {
		cl.expectText("message", "three")
	}

	// Typing reaches the room but not the typist's own tabs, here or there.
	bob.send(`{"cmd":"typing","room":"lobby"}`)
	alice.expectMember("typing", "bob")
	carol.expectMember("typing", "bob")
	bob2.quiet() // a delivered the notice to alice and skipped bob2 at once

	carol.send(`{"cmd":"who","room":"lobby"}`)
	if e := carol.expect("online"); !slices.Equal(carol.users(e), []string{"alice", "bob", "carol"}) {
		t.Fatalf("%v", e)
	}
	carol.send(`{"cmd":"rooms"}`)
	if e := carol.expect("rooms"); fmt.Sprint(e["rooms"]) != "[map[room:lobby users:3]]" {
		t.Fatalf("%v", e)
	}

	// bob leaves on b, still in on a: no "left".
	bob.send(`{"cmd":"leave","room":"lobby"}`)
	bob.expectMember("left", "bob")
	barrier(t, b, a, c)
	alice.quiet()
	bob2.quiet()
	carol.quiet()
	converged(t, "lobby", []string{"alice", "bob", "carol"}, a, b, c)

	// …and on a: now everyone is told, once.
	bob2.send(`{"cmd":"leave","room":"lobby"}`)
	bob2.expectMember("left", "bob")
	alice.expectMember("left", "bob")
	carol.expectMember("left", "bob")
	converged(t, "lobby", []string{"alice", "carol"}, a, b, c)

	// A closed connection leaves its rooms.
	carol.c.Close()
	alice.expectMember("left", "carol")
	converged(t, "lobby", []string{"alice"}, a, b, c)
	alice.quiet()
}

// A DM reaches every tab of the recipient and the sender's other tabs, on
// every node; it is refused only for a user online nowhere. Ids are unique
// across nodes: each node's carry its own tag.
func TestClusterDM(t *testing.T) {
	ns := startCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	alice := login(t, a.Server, "alice")
	alice2 := login(t, c.Server, "alice")
	bob := login(t, b.Server, "bob")
	bob2 := login(t, a.Server, "bob")
	carol := login(t, c.Server, "carol")
	online(t, "carol", 1, a)
	online(t, "bob", 2, a, c)
	online(t, "alice", 2, b, c)

	alice.send(`{"cmd":"dm","to":"bob","text":"psst","ref":"d1"}`)
	ack := alice.expect("ack")
	for _, cl := range []*client{bob, bob2, alice2} {
		if m := cl.expectText("dm", "psst"); m.str("from") != "alice" || m.str("to") != "bob" || m["id"] != ack["id"] {
			t.Fatalf("%v, ack %v", m, ack)
		}
	}
	alice.send(`{"cmd":"dm","to":"carol","text":"only on c"}`) // carol has no tab on a
	ids := []float64{ack["id"].(float64), alice.expect("ack")["id"].(float64)}
	carol.expectText("dm", "only on c")
	alice2.expectText("dm", "only on c")
	alice.send(`{"cmd":"dm","to":"nobody","text":"hello?"}`)
	alice.expectError("offline")

	carol.send(`{"cmd":"dm","to":"alice","text":"from c"}`)
	ids = append(ids, carol.expect("ack")["id"].(float64))
	alice.expectText("dm", "from c")
	alice2.expectText("dm", "from c")
	bob.send(`{"cmd":"dm","to":"alice","text":"from b"}`)
	ids = append(ids, bob.expect("ack")["id"].(float64))
	alice.expectText("dm", "from b")
	alice2.expectText("dm", "from b")
	bob2.expectText("dm", "from b")

	tags := map[string]uint64{}
	for i, id := range ids {
		node := []string{"a", "a", "c", "b"}[i]
		tag := uint64(id) & 1023
		if tags[node] != 0 && tags[node] != tag {
			t.Fatalf("ids %v: node %s with two tags", ids, node)
		}
		tags[node] = tag
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("ids %v: not increasing (each was numbered after the one before it arrived)", ids)
		}
	}
	if tags["a"] == tags["b"] || tags["a"] == tags["c"] || tags["b"] == tags["c"] {
		t.Fatalf("tags %v", tags)
	}
}

// Every node keeps the last messages of a room, wherever they were sent, in
// id order: the nodes' histories are the same, a node with no member in
// the room keeps one too, and a user who joins there gets it.
func TestClusterHistory(t *testing.T) {
	ns := startCluster(t, 3, imserver.WithLimits(imserver.Limits{History: 5}))
	a, b, c := ns[0], ns[1], ns[2]
	alice := login(t, a.Server, "alice")
	alice.join("lobby")
	converged(t, "lobby", []string{"alice"}, b)
	bob := login(t, b.Server, "bob")
	bob.join("lobby")
	alice.expectMember("joined", "bob")

	var texts []string
	say := func(from, to *client, text string) {
		t.Helper()
		from.send(`{"cmd":"say","room":"lobby","text":%q}`, text)
		from.expect("ack")
		to.expectText("message", text)
		texts = append(texts, text)
	}
	say(alice, bob, "m1")
	say(bob, alice, "m2") // numbered after m1 arrived on b
	say(alice, bob, "m3")
	for i := 4; i <= 7; i++ {
		say(bob, alice, "m"+strconv.Itoa(i))
	}
	want := a.History("lobby")
	if len(want) != 5 || !slices.IsSorted(want) {
		t.Fatalf("a's history %v", want)
	}
	for _, nd := range []*imNode{b, c} {
		tiotest.Eventually(t, nd.node.ID()+"'s history", func() bool { return slices.Equal(nd.History("lobby"), want) })
	}
	carol := login(t, c.Server, "carol")
	h, _ := carol.join("lobby")
	var got []string
	for _, m := range h {
		got = append(got, m.(map[string]any)["text"].(string))
	}
	if !slices.Equal(got, texts[2:]) {
		t.Fatalf("carol's history %v, want %v", got, texts[2:])
	}
}

// An admin's kick on one node closes the user's connections on every node
// with the words shown, tells the rooms once, and bans the user on every
// node.
func TestClusterKick(t *testing.T) {
	ns := startCluster(t, 3, imserver.WithAdminToken("t0ken"))
	a, b, c := ns[0], ns[1], ns[2]
	mod := login(t, a.Server, "mod")
	mod.send(`{"cmd":"login","user":"mod","token":"t0ken"}`)
	if w := mod.expect("welcome"); w["admin"] != true {
		t.Fatalf("%v", w)
	}
	alice := login(t, a.Server, "alice")
	alice.join("lobby")
	converged(t, "lobby", []string{"alice"}, b, c)
	bob := login(t, b.Server, "bob")
	bob.join("lobby")
	alice.expectMember("joined", "bob")
	converged(t, "lobby", []string{"alice", "bob"}, c)
	bob2 := login(t, c.Server, "bob")
	bob2.join("lobby")
	carol := login(t, c.Server, "carol")
	carol.join("lobby")
	barrier(t, c, a, b)
	alice.expectMember("joined", "carol")
	bob.expectMember("joined", "carol")
	bob2.expectMember("joined", "carol")
	online(t, "bob", 2, a)

	mod.send(`{"cmd":"kick","user":"bob","reason":"spam"}`)
	if e := mod.expect("kicked"); e.str("user") != "bob" || e["conns"] != 2.0 {
		t.Fatalf("%v", e)
	}
	for _, cl := range []*client{bob, bob2} {
		if ce := cl.c.ExpectClose(); ce.Code != ws.StatusNormalClosure || ce.Reason != "kicked by an admin: spam" {
			t.Fatalf("close %+v", ce)
		}
	}
	alice.expectMember("left", "bob")
	carol.expectMember("left", "bob")
	converged(t, "lobby", []string{"alice", "carol"}, a, b, c)
	alice.quiet()
	carol.quiet()

	// Banned everywhere: b and c banned bob before closing his connections.
	for _, nd := range ns {
		again := dial(t, nd.Server, "/ws")
		again.send(`{"cmd":"login","user":"bob"}`)
		again.expectError("banned")
	}
}

// A node that dies (cut off from NATS: no goodbye) loses its users from
// the others' online lists once its TTL passes, and the rooms are told.
func TestClusterNodeDeath(t *testing.T) {
	ns := startCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	alice := login(t, a.Server, "alice")
	alice.join("lobby")
	converged(t, "lobby", []string{"alice"}, c)
	carol := login(t, c.Server, "carol")
	carol.join("lobby")
	alice.expectMember("joined", "carol")
	converged(t, "lobby", []string{"alice", "carol"}, a, b, c)
	online(t, "carol", 1, a, b)

	c.net.cut()
	alice.expectMember("left", "carol")
	converged(t, "lobby", []string{"alice"}, a, b)
	online(t, "carol", 0, a, b)
	alice.send(`{"cmd":"dm","to":"carol","text":"there?"}`)
	alice.expectError("offline")
	tiotest.Eventually(t, "c forgotten", func() bool { return len(a.node.Nodes()) == 2 && len(b.node.Nodes()) == 2 })
}

// A room's user limit counts its users on every node; a user already in the
// room elsewhere is not a new one.
func TestClusterRoomFull(t *testing.T) {
	ns := startCluster(t, 3, imserver.WithLimits(imserver.Limits{MaxUsersPerRoom: 2}))
	a, b, c := ns[0], ns[1], ns[2]
	alice := login(t, a.Server, "alice")
	alice.join("lobby")
	bob := login(t, b.Server, "bob")
	bob.join("lobby")
	converged(t, "lobby", []string{"alice", "bob"}, a, b, c)
	carol := login(t, c.Server, "carol")
	carol.send(`{"cmd":"join","room":"lobby"}`)
	carol.expectError("room_full")
	alice2 := login(t, c.Server, "alice")
	if _, on := alice2.join("lobby"); !slices.Equal(on, []string{"alice", "bob"}) {
		t.Fatalf("online %v", on)
	}
}
