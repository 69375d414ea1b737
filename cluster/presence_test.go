package cluster_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/tiotest"
)

// The presence protocol against a scripted node, "ghost": a reset gives
// its state; updates change it; a lost update (a gap in the numbers)
// makes the node ask ghost for its full state; a new epoch (ghost
// restarted) voids what was known; goodbye forgets it at once; silence
// forgets it after its TTL.
func TestPresenceProtocol(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, testConfig(t, "a", ns.url()))
	nc, err := nats.Connect(ns.url())
	must(t, err)
	defer nc.Close()
	asks := make(chan string, 64)
	_, err = nc.Subscribe("tio.presence", func(m *nats.Msg) {
		if want, ok := cluster.SyncWanted(m.Data); ok {
			asks <- want
		}
	})
	must(t, err)
	must(t, nc.Flush())
	pub := func(b []byte) { t.Helper(); must(t, nc.Publish("tio.presence", b)); must(t, nc.Flush()) }
	ttl := time.Second
	pub(cluster.Update("ghost", 1, 1, true, ttl, map[string]int32{"u1": 2, "u2": 1}))
	tiotest.Eventually(t, "ghost's state", func() bool { return a.Presence("u1").Conns == 2 && a.Online("u2") })
	pub(cluster.Update("ghost", 1, 2, false, ttl, map[string]int32{"u2": 0, "u3": 4}))
	tiotest.Eventually(t, "ghost's update", func() bool { return !a.Online("u2") && a.Presence("u3").Conns == 4 })
	if c := a.Counts(); c.Nodes != 2 || c.Conns != 6 {
		t.Fatalf("counts %+v", c)
	}

	drain(asks)
	pub(cluster.Update("ghost", 1, 4, false, ttl, map[string]int32{"u4": 1})) // 3 was lost
	waitAsk(t, asks, "ghost")
	tiotest.Eventually(t, "entries of an update after a gap applied", func() bool { return a.Online("u4") })
	if synced(a, "ghost") {
		t.Fatal("ghost synced after a gap")
	}
	pub(cluster.Update("ghost", 1, 5, true, ttl, map[string]int32{"u1": 1}))
	tiotest.Eventually(t, "ghost's full state", func() bool {
		return synced(a, "ghost") && a.Presence("u1").Conns == 1 && !a.Online("u3") && !a.Online("u4")
	})

	// ghost restarts: a new epoch voids the old state, even without a reset.
	pub(cluster.Update("ghost", 2, 1, false, ttl, map[string]int32{"u9": 1}))
	tiotest.Eventually(t, "the old epoch forgotten", func() bool { return !a.Online("u1") && a.Online("u9") })
	waitAsk(t, asks, "ghost")

	// A goodbye of another epoch is ignored; of this one, ghost is gone.
	pub(cluster.Bye("ghost", 1))
	pub(cluster.Bye("ghost", 2))
	tiotest.Eventually(t, "ghost gone", func() bool { return !a.Online("u9") && len(a.Nodes()) == 1 })

	// Silence: gone after the TTL it announced.
	pub(cluster.Update("quiet", 1, 1, true, 100*time.Millisecond, map[string]int32{"q": 1}))
	tiotest.Eventually(t, "quiet's state", func() bool { return a.Online("q") })
	tiotest.Eventually(t, "quiet forgotten", func() bool { return !a.Online("q") })
	tiotest.Eventually(t, "quiet expired", func() bool { return a.Stats().Expired == 1 })
}

// Other nodes' presence is bounded: by MaxNodes, and by MaxPresenceBytes.
func TestPresenceBounds(t *testing.T) {
	ns := startNATS(t)
	cfg := testConfig(t, "a", ns.url())
	cfg.MaxNodes = 1
	cfg.MaxPresenceBytes = 1000
	a := newNode(t, cfg)
	nc, err := nats.Connect(ns.url())
	must(t, err)
	defer nc.Close()
	big := map[string]int32{}
	for i := range 100 {
		big[string(rune('a'+i%26))+string(rune('a'+i/26))+"-user"] = 1
	}
	must(t, nc.Publish("tio.presence", cluster.Update("one", 1, 1, true, time.Second, big)))
	must(t, nc.Publish("tio.presence", cluster.Update("two", 1, 1, true, time.Second, map[string]int32{"x": 1})))
	must(t, nc.Flush())
	tiotest.Eventually(t, "drops counted", func() bool { return a.Stats().PresenceDropped == 2 })
	st := a.Stats()
	if st.PresenceBytes > 1000 || a.Online("x") {
		t.Fatalf("over the bounds: %+v", st)
	}
	for _, ni := range a.Nodes() {
		if ni.ID == "one" && (ni.Synced || ni.Users == 0 || ni.Users == 100) {
			t.Fatalf("one: %+v", ni)
		}
	}
}

func synced(nd *node, id string) bool {
	for _, ni := range nd.Nodes() {
		if ni.ID == id {
			return ni.Synced
		}
	}
	return false
}

func drain(c chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func waitAsk(t *testing.T, asks chan string, want string) {
	t.Helper()
	deadline := time.After(tiotest.Timeout)
	for {
		select {
		case got := <-asks:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no sync request for %q", want)
		}
	}
}

// A flood of requests for a node's full state costs at most one full state
// a heartbeat.
func TestSyncFlood(t *testing.T) {
	ns := startNATS(t)
	newNode(t, testConfig(t, "a", ns.url())) // heartbeat 20 ms
	nc, err := nats.Connect(ns.url())
	must(t, err)
	defer nc.Close()
	var fulls atomic.Int32
	_, err = nc.Subscribe("tio.presence", func(m *nats.Msg) {
		if origin, ok := cluster.Reset(m.Data); ok && origin == "a" {
			fulls.Add(1)
		}
	})
	must(t, err)
	must(t, nc.Flush())
	start := time.Now()
	for range 2000 {
		must(t, nc.Publish("tio.presence", cluster.Sync("flooder", "a")))
	}
	must(t, nc.Flush())
	time.Sleep(100 * time.Millisecond)
	tiotest.Eventually(t, "a full state", func() bool { return fulls.Load() > 0 })
	beats := time.Since(start) / (20 * time.Millisecond)
	if n := fulls.Load(); time.Duration(n) > beats+2 {
		t.Fatalf("%d full states in %d heartbeats", n, beats)
	}
}
