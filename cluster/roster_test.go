package cluster_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/tiotest"
)

// changes records the rosters OnRosterChange was called for.
type changes struct {
	mu sync.Mutex
	n  map[string]int
}

func watch(nd *node) *changes {
	c := &changes{n: map[string]int{}}
	nd.OnRosterChange(func(r string) { c.mu.Lock(); c.n[r]++; c.mu.Unlock() })
	return c
}

func (c *changes) of(r string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[r] }

// roster waits until every node lists want as the roster's members.
func roster(t testing.TB, name string, want []string, nodes ...*node) {
	t.Helper()
	for _, nd := range nodes {
		tiotest.Eventually(t, nd.ID()+"'s roster "+name, func() bool { return slices.Equal(nd.Roster(name), want) })
	}
}

// Rosters: members entered on any node are listed by every node, once
// each; a member stays while any node (any Enter) holds them; other nodes
// are told of changes; a node that stops takes its rosters with it at
// once (b's TTL is ten minutes: only its goodbye can make the others forget
// it within the test), one that is killed within its TTL (c's: 200 ms).
func TestRosters(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, testConfig(t, "a", ns.url()))
	cfgB := testConfig(t, "b", ns.url())
	cfgB.TTL = 10 * time.Minute
	b := newNode(t, cfgB)
	c := newNode(t, testConfig(t, "c", ns.url()))
	meshed(t, a, b, c)
	ca, cc := watch(a), watch(c)
	a.Enter("room", "alice")
	b.Enter("room", "bob")
	b.Enter("room", "alice") // alice in the room on two nodes
	c.Enter("room", "carol")
	c.Enter("other", "carol")
	c.Enter("room", "carol") // counted: twice
	roster(t, "room", []string{"alice", "bob", "carol"}, a, b, c)
	roster(t, "other", []string{"carol"}, a, b, c)
	if !a.InRoster("room", "bob") || a.InRoster("other", "bob") || len(a.Roster("nowhere")) != 0 {
		t.Fatal("InRoster")
	}
	if ca.of("room") == 0 || ca.of("other") == 0 || cc.of("room") == 0 {
		t.Fatalf("changes seen by a %v, c %v", ca.n, cc.n)
	}

	b.Exit("room", "alice") // still on a
	b.Exit("room", "nobody")
	time.Sleep(50 * time.Millisecond)
	roster(t, "room", []string{"alice", "bob", "carol"}, a, b, c)
	a.Exit("room", "alice")
	roster(t, "room", []string{"bob", "carol"}, a, b, c)
	c.Exit("room", "carol") // entered twice
	time.Sleep(50 * time.Millisecond)
	roster(t, "room", []string{"bob", "carol"}, a, b, c)

	for _, ni := range a.Nodes() {
		if !ni.RostersSynced {
			t.Fatalf("a's nodes: %+v", a.Nodes())
		}
		if want := map[string]int{"a": 0, "b": 1, "c": 2}[ni.ID]; ni.Rosters != want {
			t.Fatalf("%s has %d rosters, want %d", ni.ID, ni.Rosters, want)
		}
	}

	// b stops: its members leave at once, and a is told.
	before := ca.of("room")
	ctx, cancel := context.WithTimeout(context.Background(), tiotest.Timeout)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "b's goodbye", func() bool {
		return slices.Equal(a.Roster("room"), []string{"carol"}) && ca.of("room") > before
	})

	// c is killed: its members leave when its TTL passes.
	before = ca.of("other")
	c.Crash()
	tiotest.Eventually(t, "c's rosters forgotten", func() bool { return len(a.Roster("room")) == 0 && len(a.Roster("other")) == 0 })
	tiotest.Eventually(t, "a told", func() bool { return ca.of("other") > before })
}

// Roster changes do not wait for the next heartbeat: with heartbeats of
// 16 s, a's view of b's roster follows each change within Heartbeat/8 (2 s;
// the test allows half a heartbeat).
func TestRostersEager(t *testing.T) {
	ns := startNATS(t)
	slow := func(id string) cluster.Config {
		cfg := testConfig(t, id, ns.url())
		cfg.Heartbeat, cfg.TTL = 16*time.Second, time.Minute
		return cfg
	}
	a := newNode(t, slow("a"))
	b := newNode(t, slow("b"))
	// b's first heartbeat, at its start, introduces it to a (a's next one,
	// which would introduce a to b, is 16 s away: a sees b, not b a).
	tiotest.Eventually(t, "a sees b", func() bool { return len(a.Nodes()) == 2 })
	for _, step := range []struct {
		enter, exit string
		want        []string
	}{{"bob", "", []string{"bob"}}, {"bea", "bob", []string{"bea"}}} {
		b.Enter("room", step.enter)
		if step.exit != "" {
			b.Exit("room", step.exit)
		}
		tiotest.EventuallyWithin(t, 8*time.Second, "a sees the change before b's next heartbeat", func() bool {
			return slices.Equal(a.Roster("room"), step.want)
		})
	}
}

// A node that joins late is sent the others' rosters and sends its own.
func TestRostersLateJoin(t *testing.T) {
	ns := startNATS(t)
	slow := func(id string) cluster.Config {
		cfg := testConfig(t, id, ns.url())
		cfg.Heartbeat, cfg.TTL = time.Second, 5*time.Second
		return cfg
	}
	a := newNode(t, slow("a"))
	for i := range 30 {
		a.Enter("big", string(rune('A'+i)))
	}
	b := newNode(t, slow("b"))
	meshed(t, a, b)
	tiotest.Eventually(t, "b learns a's rosters", func() bool { return len(b.Roster("big")) == 30 })
	b.Enter("room", "bob")
	b.Enter("room", "bea")
	roster(t, "room", []string{"bea", "bob"}, a)
	tiotest.Eventually(t, "synced", func() bool {
		for _, nd := range []*node{a, b} {
			for _, ni := range nd.Nodes() {
				if !ni.RostersSynced {
					return false
				}
			}
		}
		return true
	})
}

// The roster protocol against a scripted node: an update of a node not
// (yet) known by its presence is ignored; a gap makes the node ask for
// full rosters; a reset replaces them; a new epoch of the node's presence
// voids them; rosters count against MaxPresenceBytes.
func TestRosterProtocol(t *testing.T) {
	ns := startNATS(t)
	cfg := testConfig(t, "a", ns.url())
	cfg.MaxPresenceBytes = 2000
	a := newNode(t, cfg)
	ca := watch(a)
	nc, err := nats.Connect(ns.url())
	must(t, err)
	defer nc.Close()
	asks := make(chan string, 64)
	_, err = nc.Subscribe("tio.rosters", func(m *nats.Msg) {
		if want, ok := cluster.SyncWanted(m.Data); ok {
			asks <- want
		}
	})
	must(t, err)
	must(t, nc.Flush())
	pub := func(subj string, b []byte) { t.Helper(); must(t, nc.Publish(subj, b)); must(t, nc.Flush()) }
	ttl := time.Second
	type rk = [2]string

	pub("tio.rosters", cluster.RosterUpdate("ghost", 1, 1, true, ttl, map[rk]int32{{"r", "g1"}: 1}))
	time.Sleep(30 * time.Millisecond)
	if len(a.Roster("r")) != 0 {
		t.Fatal("rosters of a node not known by its presence")
	}
	pub("tio.presence", cluster.Update("ghost", 1, 1, true, ttl, nil))
	waitAsk(t, asks, "ghost") // a node that joins is asked for its rosters
	pub("tio.rosters", cluster.RosterUpdate("ghost", 1, 2, true, ttl, map[rk]int32{{"r", "g1"}: 1, {"r", "g2"}: 2}))
	roster(t, "r", []string{"g1", "g2"}, a)
	pub("tio.rosters", cluster.RosterUpdate("ghost", 1, 3, false, ttl, map[rk]int32{{"r", "g1"}: 0, {"s", "g3"}: 1}))
	roster(t, "r", []string{"g2"}, a)
	roster(t, "s", []string{"g3"}, a)
	if ca.of("r") < 2 || ca.of("s") != 1 {
		t.Fatalf("changes %v", ca.n)
	}

	drain(asks)
	pub("tio.rosters", cluster.RosterUpdate("ghost", 1, 5, false, ttl, map[rk]int32{{"s", "g4"}: 1})) // 4 was lost
	waitAsk(t, asks, "ghost")
	roster(t, "s", []string{"g3", "g4"}, a)
	pub("tio.rosters", cluster.RosterUpdate("ghost", 1, 6, true, ttl, map[rk]int32{{"t", "g5"}: 1}))
	tiotest.Eventually(t, "the full rosters", func() bool {
		return len(a.Roster("r")) == 0 && len(a.Roster("s")) == 0 && slices.Equal(a.Roster("t"), []string{"g5"})
	})

	// ghost restarts: its presence's new epoch voids its rosters.
	pub("tio.presence", cluster.Update("ghost", 2, 1, true, ttl, nil))
	tiotest.Eventually(t, "the old epoch's rosters forgotten", func() bool { return len(a.Roster("t")) == 0 })

	// Bounds: entries over MaxPresenceBytes are dropped and counted.
	big := map[rk]int32{}
	for i := range 100 {
		big[rk{"big", string(rune('a'+i%26)) + string(rune('a'+i/26)) + "-member"}] = 1
	}
	pub("tio.rosters", cluster.RosterUpdate("ghost", 2, 1, true, ttl, big))
	tiotest.Eventually(t, "drops counted", func() bool { return a.Stats().PresenceDropped > 0 })
	if st := a.Stats(); st.PresenceBytes > 2000 || len(a.Roster("big")) == 0 || len(a.Roster("big")) == 100 {
		t.Fatalf("%+v, %d members", st, len(a.Roster("big")))
	}
	for _, ni := range a.Nodes() {
		if ni.ID == "ghost" && ni.RostersSynced {
			t.Fatalf("ghost: %+v", ni)
		}
	}

	// Names out of bounds are not tracked.
	a.Enter("", "x")
	a.Enter("r", "")
	if st := a.Stats(); st.Untracked != 2 {
		t.Fatalf("untracked %d", st.Untracked)
	}
}
