package registry_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/registry"
)

// fakeConn is just enough of a gnet.Conn to make a channel: its addresses.
type fakeConn struct {
	gnet.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c fakeConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001} }

var env link.Env

// newChannel makes a channel from ip with id, attached to r.
func newChannel(r *registry.Registry, id uint64, ip string) *channel.Channel {
	ch := (*channel.Channel)(link.New(fakeConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000 + int(id)}}, id, &env))
	r.Attach(ch)
	return ch
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func idsOf(chs []*channel.Channel) []uint64 {
	var out []uint64
	for _, ch := range registry.SortByID(chs) {
		out = append(out, ch.ID())
	}
	return out
}

func TestBindings(t *testing.T) {
	r := registry.New(registry.Listener{})
	a := newChannel(r, 1, "10.0.0.1")
	b := newChannel(r, 2, "10.0.0.1")
	c := newChannel(r, 3, "::ffff:10.0.0.2") // a mapped address is its IPv4 one

	if s := r.Sizes(); s != (registry.Sizes{IPs: 2}) {
		t.Fatalf("unbound channels: sizes %+v", s)
	}
	must(t, r.BindUser(a, "u"))
	must(t, r.BindUser(b, "u"))
	must(t, r.BindGroup(a, "g1"))
	must(t, r.BindGroup(c, "g1"))
	must(t, r.BindGroup(c, "g2"))
	must(t, r.BindToken(b, "t"))
	must(t, r.BindBsID(c, "x"))

	if got := idsOf(r.Members(registry.KindUser, "u")); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("user members %v", got)
	}
	if got := idsOf(r.Members(registry.KindGroup, "g1")); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("group members %v", got)
	}
	if got := idsOf(r.Members(registry.KindBsID, "x")); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("bsid members %v", got)
	}
	if got := idsOf(r.MembersOfIP(c.RemoteAddr().Addr())); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("ip members %v", got)
	}
	if got := idsOf(r.All()); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("all %v", got)
	}
	if r.Count(registry.KindGroup, "g1") != 2 || r.Count(registry.KindToken, "t") != 1 || r.Count(registry.KindBsID, "x") != 1 || r.Count(registry.KindUser, "none") != 0 {
		t.Fatal("counts")
	}
	if r.Of(a, registry.KindUser) != "u" || r.Of(b, registry.KindToken) != "t" || r.Of(c, registry.KindBsID) != "x" || r.Of(a, registry.KindToken) != "" {
		t.Fatal("Of")
	}
	if g := r.GroupsOf(c); !slices.Equal(g, []string{"g1", "g2"}) {
		t.Fatalf("GroupsOf %v", g)
	}
	want := registry.Sizes{Users: 1, Groups: 2, Tokens: 1, BsIDs: 1, IPs: 2, Bound: 3}
	if s := r.Sizes(); s != want {
		t.Fatalf("sizes %+v, want %+v", s, want)
	}

	// The snapshot is shared until a change, then rebuilt.
	s1 := r.Members(registry.KindGroup, "g1")
	if s2 := r.Members(registry.KindGroup, "g1"); &s1[0] != &s2[0] {
		t.Fatal("snapshot rebuilt with no change")
	}
	must(t, r.BindGroup(b, "g1"))
	if s3 := r.Members(registry.KindGroup, "g1"); len(s3) != 3 || len(s1) != 2 {
		t.Fatalf("snapshot after a change: %d (old %d)", len(s3), len(s1))
	}

	// Moving a business id; the old holder's record goes once it is empty.
	must(t, r.BindBsID(a, "x"))
	if r.BsID("x") != a || r.Of(c, registry.KindBsID) != "" || r.Of(a, registry.KindBsID) != "x" {
		t.Fatal("bsid move")
	}
	if r.UnbindBsID(c) != "" {
		t.Fatal("the old holder unbound the moved id")
	}

	// Unbinds, down to nothing.
	if r.UnbindUser(a) != "u" || r.UnbindUser(a) != "" || r.UnbindToken(b) != "t" {
		t.Fatal("unbind")
	}
	if !r.UnbindGroup(c, "g2") || r.UnbindGroup(c, "g2") || r.InGroup(c, "g2") {
		t.Fatal("unbind group")
	}
	r.UnbindAll(a)
	r.UnbindAll(b)
	r.UnbindAll(c)
	if s := r.Sizes(); s != (registry.Sizes{IPs: 2}) {
		t.Fatalf("after unbinding everything: %+v", s)
	}
	for _, ch := range []*channel.Channel{a, b, c} {
		r.Detach(ch)
	}
	if s := r.Sizes(); s != (registry.Sizes{}) || len(r.All()) != 0 {
		t.Fatalf("after detaching everything: %+v, all %d", s, len(r.All()))
	}
}

func TestBindErrors(t *testing.T) {
	r := registry.New(registry.Listener{})
	a := newChannel(r, 1, "10.0.0.1")
	for _, err := range []error{r.BindUser(a, ""), r.BindGroup(a, ""), r.BindToken(a, ""), r.BindBsID(a, "")} {
		if !errors.Is(err, registry.ErrEmptyKey) {
			t.Fatalf("empty key: %v", err)
		}
	}
	if _, err := r.BindUserToGroup("u", ""); !errors.Is(err, registry.ErrEmptyKey) {
		t.Fatalf("empty group: %v", err)
	}
	r.Detach(a)
	for _, err := range []error{r.BindUser(a, "u"), r.BindGroup(a, "g"), r.BindToken(a, "t"), r.BindBsID(a, "b")} {
		if !errors.Is(err, registry.ErrNotOpen) {
			t.Fatalf("bind after detach: %v", err)
		}
	}
	other := registry.New(registry.Listener{})
	b := newChannel(other, 2, "10.0.0.1")
	if err := r.BindUser(b, "u"); !errors.Is(err, registry.ErrNotOpen) {
		t.Fatalf("bind of another registry's channel: %v", err)
	}
	if s := r.Sizes(); s != (registry.Sizes{}) {
		t.Fatalf("sizes %+v", s)
	}
}

func TestUserToGroup(t *testing.T) {
	r := registry.New(registry.Listener{})
	a, b, c := newChannel(r, 1, "10.0.0.1"), newChannel(r, 2, "10.0.0.1"), newChannel(r, 3, "10.0.0.1")
	must(t, r.BindUser(a, "u"))
	must(t, r.BindUser(b, "u"))
	must(t, r.BindUser(c, "v"))
	must(t, r.BindGroup(b, "g"))
	if n, err := r.BindUserToGroup("u", "g"); n != 1 || err != nil {
		t.Fatalf("BindUserToGroup = %d, %v", n, err)
	}
	if got := idsOf(r.Members(registry.KindGroup, "g")); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("group %v", got)
	}
	if n := r.UnbindUserFromGroup("u", "g"); n != 2 || r.Count(registry.KindGroup, "g") != 0 {
		t.Fatalf("UnbindUserFromGroup = %d", n)
	}
}

func TestListener(t *testing.T) {
	var evs []string
	l := registry.Listener{
		OnBind: func(ch *channel.Channel, k registry.Kind, key string) {
			evs = append(evs, fmt.Sprintf("+%d %s %s", ch.ID(), k, key))
		},
		OnUnbind: func(ch *channel.Channel, k registry.Kind, key string) {
			evs = append(evs, fmt.Sprintf("-%d %s %s", ch.ID(), k, key))
		},
	}
	r := registry.New(l)
	a, b := newChannel(r, 1, "10.0.0.1"), newChannel(r, 2, "10.0.0.1")
	must(t, r.BindUser(a, "u"))
	must(t, r.BindUser(a, "u")) // no change, no event
	must(t, r.BindUser(a, "v")) // replaces
	must(t, r.BindGroup(a, "g"))
	must(t, r.BindToken(a, "t"))
	must(t, r.BindBsID(a, "x"))
	must(t, r.BindBsID(b, "x")) // moves
	must(t, r.BindBsID(a, "x")) // and back
	r.UnbindGroup(a, "g")
	must(t, r.BindGroup(a, "g"))
	r.Detach(a)
	r.Detach(b)
	want := []string{
		"+1 user u", "-1 user u", "+1 user v", "+1 group g", "+1 token t", "+1 bsid x",
		"-1 bsid x", "+2 bsid x", "-2 bsid x", "+1 bsid x", "-1 group g", "+1 group g",
		"-1 user v", "-1 token t", "-1 bsid x", "-1 group g",
	}
	if !slices.Equal(evs, want) {
		t.Fatalf("events\n got %q\nwant %q", evs, want)
	}
}

func TestSortByID(t *testing.T) {
	r := registry.New(registry.Listener{})
	var chs []*channel.Channel
	for i := range 10 {
		chs = append(chs, newChannel(r, uint64(10-i), "10.0.0.1"))
	}
	sorted := registry.SortByID(chs)
	for i, ch := range sorted {
		if ch.ID() != uint64(i+1) {
			t.Fatalf("SortByID: %v", idsOf(sorted))
		}
	}
}

// Binds, unbinds, business id moves, queries and detaches from many
// goroutines: no race (run with -race), no deadlock, and every index empty
// once every channel is detached, including those bound while detaching.
func TestConcurrentBindDetach(t *testing.T) {
	r := registry.New(registry.Listener{
		OnBind:   func(*channel.Channel, registry.Kind, string) {},
		OnUnbind: func(*channel.Channel, registry.Kind, string) {},
	})
	const n = 200
	chs := make([]*channel.Channel, n)
	for i := range chs {
		chs[i] = newChannel(r, uint64(i+1), fmt.Sprint("10.0.", i%4, ".1"))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			key := func(p string) string { return fmt.Sprint(p, rng.IntN(5)) }
			for range 5000 {
				ch := chs[rng.IntN(n)]
				switch rng.IntN(12) {
				case 0:
					_ = r.BindUser(ch, key("u"))
				case 1:
					_ = r.BindGroup(ch, key("g"))
				case 2:
					r.UnbindGroup(ch, key("g"))
				case 3:
					_ = r.BindToken(ch, key("t"))
				case 4:
					_ = r.BindBsID(ch, key("b"))
				case 5:
					r.UnbindBsID(ch)
				case 6:
					r.UnbindAll(ch)
				case 7:
					_, _ = r.BindUserToGroup(key("u"), key("g"))
				case 8:
					r.UnbindUserFromGroup(key("u"), key("g"))
				case 9:
					for _, m := range r.Members(registry.KindGroup, key("g")) {
						_ = m.ID()
					}
					_ = r.All()
					_ = r.GroupsOf(ch)
					_ = r.Of(ch, registry.KindBsID)
				case 10:
					if rng.IntN(20) == 0 {
						r.Detach(ch) // closing; later binds fail, a second Detach does nothing
					}
				case 11:
					_ = r.Sizes()
				}
			}
		}()
	}
	wg.Wait()
	// A business id is held by at most one channel, which knows it.
	for i := range 5 {
		k := fmt.Sprint("b", i)
		if ch := r.BsID(k); ch != nil && r.Of(ch, registry.KindBsID) != k {
			t.Fatalf("%s held by %v, which says %q", k, ch, r.Of(ch, registry.KindBsID))
		}
	}
	for _, ch := range chs {
		r.Detach(ch)
	}
	if s := r.Sizes(); s != (registry.Sizes{}) {
		t.Fatalf("indexes not empty: %+v", s)
	}
}

func BenchmarkBindUnbind(b *testing.B) {
	r := registry.New(registry.Listener{})
	chs := make([]*channel.Channel, 1024)
	for i := range chs {
		chs[i] = newChannel(r, uint64(i+1), "10.0.0.1")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			ch := chs[i%len(chs)]
			_ = r.BindGroup(ch, "g")
			r.UnbindGroup(ch, "g")
			i++
		}
	})
}

func BenchmarkMembersSnapshot(b *testing.B) {
	r := registry.New(registry.Listener{})
	for i := range 2000 {
		_ = r.BindGroup(newChannel(r, uint64(i+1), "10.0.0.1"), "g")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if len(r.Members(registry.KindGroup, "g")) != 2000 {
				b.Fatal("members")
			}
		}
	})
}

// An unbound channel costs its cell in the table (and, once the index by
// IP is built, its entry in its IP's set) and nothing more: attaching and
// detaching it allocates nothing once the cell exists.
func TestAttachDetachDoNotAllocate(t *testing.T) {
	r := registry.New(registry.Listener{})
	for i := range 1000 {
		newChannel(r, uint64(i+1), "10.0.0.1")
	}
	ch := newChannel(r, 5000, "10.0.0.1")
	r.Detach(ch)
	if n := testing.AllocsPerRun(100, func() {
		r.Attach(ch)
		r.Detach(ch)
	}); n != 0 {
		t.Fatalf("Attach+Detach allocate %v times", n)
	}
	if s := r.Sizes(); s != (registry.Sizes{IPs: 1}) {
		t.Fatalf("sizes %+v", s)
	}
}

// The table of attached channels finds a channel by id across pages, forgets
// it when it is detached, and does not mistake a later channel in the same
// slot (a reused descriptor) for it.
func TestChannelBySlot(t *testing.T) {
	r := registry.New(registry.Listener{})
	slots := []int{0, 1, 1023, 1024, 5000, 70000, link.MaxSlot}
	var chs []*channel.Channel
	for i, slot := range slots {
		chs = append(chs, newChannel(r, link.MakeID(uint64(i+1), slot), "10.0.0.1"))
	}
	if r.Len() != len(slots) {
		t.Fatalf("Len %d, want %d", r.Len(), len(slots))
	}
	for i, ch := range chs {
		if link.SlotOf(ch.ID()) != slots[i] || r.Channel(ch.ID()) != ch {
			t.Fatalf("slot %d: Slot %d, Channel %v", slots[i], link.SlotOf(ch.ID()), r.Channel(ch.ID()))
		}
	}
	var seen []int
	r.Each(func(ch *channel.Channel) bool { seen = append(seen, link.SlotOf(ch.ID())); return true })
	if !slices.Equal(seen, slots) {
		t.Fatalf("Each saw slots %v, want %v", seen, slots)
	}
	old := chs[4]
	r.Detach(old)
	if r.Channel(old.ID()) != nil || r.Len() != len(slots)-1 {
		t.Fatalf("detached channel still found (Len %d)", r.Len())
	}
	reused := newChannel(r, link.MakeID(100, link.SlotOf(old.ID())), "10.0.0.2")
	if r.Channel(old.ID()) != nil || r.Channel(reused.ID()) != reused || reused.ID() <= old.ID() {
		t.Fatal("a reused slot confused the old and the new channel")
	}
	if err := r.BindUser(old, "u"); !errors.Is(err, registry.ErrNotOpen) {
		t.Fatalf("bind of a detached channel: %v", err)
	}
	// A channel still in its slot when another takes it (evicted) is
	// detached without disturbing the newcomer.
	newer := newChannel(r, link.MakeID(101, link.SlotOf(old.ID())), "10.0.0.3")
	r.Detach(reused)
	if r.Channel(newer.ID()) != newer || r.Len() != len(slots) {
		t.Fatalf("evicted channel's Detach removed the newcomer (Len %d)", r.Len())
	}
	if r.CountIP(netip.MustParseAddr("10.0.0.2")) != 0 || r.CountIP(netip.MustParseAddr("10.0.0.3")) != 1 {
		t.Fatal("index by IP wrong after eviction")
	}
}

// The index by IP is built by the first query while channels attach and
// detach concurrently, and is exact afterwards.
func TestIPIndexBuiltUnderChurn(t *testing.T) {
	for round := range 20 {
		r := registry.New(registry.Listener{})
		const n = 400
		chs := make([]*channel.Channel, n)
		for i := range n {
			chs[i] = (*channel.Channel)(link.New(fakeConn{remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(i%4)), Port: 1000 + i}}, link.MakeID(uint64(i+1), i), &env))
			if i%2 == 0 {
				r.Attach(chs[i]) // the even ones start attached
			}
		}
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 2 {
					if i%2 == 0 {
						r.Detach(chs[i]) // even ones leave
					} else {
						r.Attach(chs[i]) // odd ones join
					}
				}
			}()
		}
		r.CountIP(netip.MustParseAddr("10.0.0.1")) // builds the index mid-churn
		wg.Wait()
		for ip := range 4 {
			addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(ip)})
			want := 0
			for i := 1; i < n; i += 2 {
				if i%4 == ip {
					want++
				}
			}
			if got := r.CountIP(addr); got != want || len(r.MembersOfIP(addr)) != want {
				t.Fatalf("round %d: %v has %d channels, want %d", round, addr, got, want)
			}
		}
		for i := 1; i < n; i += 2 {
			r.Detach(chs[i])
		}
		if s := r.Sizes(); s != (registry.Sizes{}) || r.Len() != 0 {
			t.Fatalf("round %d: after every Detach: %+v, Len %d", round, s, r.Len())
		}
	}
}
