package tio_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

var sampleTargets = []tio.Target{
	tio.All(), tio.ID(42), tio.IDs(1, 2, 3), tio.User("alice"), tio.Group("room:1"),
	tio.Token("tok"), tio.BsID("order-7"), tio.IP(netip.MustParseAddr("10.0.0.1")),
	tio.IP(netip.MustParseAddr("2001:db8::1")), tio.User("ünï cødé"),
}

// Targets are comparable values with a text and a binary form that both
// round-trip.
func TestTargetForms(t *testing.T) {
	seen := map[tio.Target]bool{}
	for _, tg := range sampleTargets {
		if seen[tg] {
			t.Fatalf("%v equals another sample", tg)
		}
		seen[tg] = true
		b, err := tg.MarshalBinary()
		if err != nil {
			t.Fatalf("%v: %v", tg, err)
		}
		var back tio.Target
		if err := back.UnmarshalBinary(b); err != nil || back != tg {
			t.Fatalf("%v: binary round trip %v, %v", tg, back, err)
		}
		txt, _ := tg.MarshalText()
		if err := back.UnmarshalText(txt); err != nil || back != tg {
			t.Fatalf("%v: text round trip %q → %v, %v", tg, txt, back, err)
		}
	}
	if tio.IP(netip.MustParseAddr("::ffff:10.0.0.1")) != tio.IP(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("an IPv4-mapped address is not its IPv4 address")
	}
	if tio.IDs(7) != tio.ID(7) || !slices.Equal(tio.IDs(1, 2).IDs(), []uint64{1, 2}) {
		t.Fatal("ids")
	}
	if s := tio.Group("room:1").String(); s != "group:room:1" {
		t.Fatalf("String = %q", s)
	}
	if !(tio.Target{}).IsZero() || tio.All().IsZero() {
		t.Fatal("IsZero")
	}
}

// The binary encoding is stable: these bytes are what docs/bindings.md
// specifies, and the cluster relay publishes them.
func TestTargetEncodingIsStable(t *testing.T) {
	for _, c := range []struct {
		t   tio.Target
		hex string
	}{
		{tio.All(), "01"},
		{tio.ID(0x0102030405060708), "020102030405060708"},
		{tio.IDs(1, 2), "03020000000000000001" + "0000000000000002"},
		{tio.User("al"), "0402616c"},
		{tio.Group("g"), "050167"},
		{tio.Token("t"), "060174"},
		{tio.BsID("b"), "070162"},
		{tio.IP(netip.MustParseAddr("10.0.0.1")), "08040a000001"},
	} {
		b, err := c.t.MarshalBinary()
		if err != nil || hex.EncodeToString(b) != c.hex {
			t.Errorf("%v encodes as %x (%v), want %s", c.t, b, err, c.hex)
		}
	}
	doc, err := os.ReadFile("docs/bindings.md")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := tio.User("alice").MarshalBinary(); !strings.Contains(string(doc), "`"+strings.TrimSpace(fmt.Sprintf("% x", b))+"`") {
		t.Errorf("docs/bindings.md does not give user:alice's encoding, % x", b)
	}
}

func TestTargetBadEncodings(t *testing.T) {
	for _, h := range []string{"", "00", "09", "02010203", "0405616c", "08030a0000", "03ffffffff0f", "0481808080808080808001"} {
		b, _ := hex.DecodeString(h)
		var tg tio.Target
		if err := tg.UnmarshalBinary(b); !errors.Is(err, tio.ErrInvalidTarget) {
			t.Errorf("%s decoded as %v, %v", h, tg, err)
		}
	}
	for _, s := range []string{"", "all:x", "id:", "id:-1", "ids:1,,2", "ip:300.1.1.1", "nobody:x", "user"} {
		if _, err := tio.ParseTarget(s); !errors.Is(err, tio.ErrInvalidTarget) {
			t.Errorf("ParseTarget(%q) = %v", s, err)
		}
	}
	if _, err := (tio.Target{}).MarshalBinary(); !errors.Is(err, tio.ErrInvalidTarget) {
		t.Error("the zero Target encodes")
	}
}

// DecodeTarget never panics, never allocates what the input announces, and
// what it decodes encodes back to the bytes it consumed.
func FuzzDecodeTarget(f *testing.F) {
	for _, tg := range sampleTargets {
		b, _ := tg.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{0x04, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, n, err := tio.DecodeTarget(b)
		if err != nil {
			if !errors.Is(err, tio.ErrInvalidTarget) {
				t.Fatalf("error %v does not wrap ErrInvalidTarget", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		again, err := tg.MarshalBinary()
		if err != nil {
			t.Fatalf("%v does not encode: %v", tg, err)
		}
		if tg.Kind() != tio.KindIP && !bytes.Equal(again, b[:n]) {
			t.Fatalf("%x decoded as %v, which encodes as %x", b[:n], tg, again)
		}
	})
}

// Binding takes only bindable targets; unbinding takes a name, an empty
// name (whatever is bound of that kind) or All (everything).
func TestBindAndUnbindTargets(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{})
	_, ch := p.bin()
	srv := p.srv
	for _, bad := range []tio.Target{tio.All(), tio.ID(1), tio.IP(netip.MustParseAddr("1.2.3.4")), {}} {
		if err := srv.Bind(ch, bad); !errors.Is(err, tio.ErrInvalidTarget) {
			t.Fatalf("Bind(%v) = %v", bad, err)
		}
	}
	must(t, srv.Bind(ch, tio.User("u")))
	must(t, srv.Bind(ch, tio.Group("a")))
	must(t, srv.Bind(ch, tio.Group("b")))
	must(t, srv.Bind(ch, tio.Token("t")))
	must(t, srv.Bind(ch, tio.BsID("x")))
	if b := srv.Bindings(ch); b.User != "u" || b.Token != "t" || b.BsID != "x" || !slices.Equal(b.Groups, []string{"a", "b"}) || !b.InGroup("b") {
		t.Fatalf("Bindings = %+v", b)
	}
	if ok, _ := srv.Unbind(ch, tio.User("someone else")); ok || srv.Bindings(ch).User != "u" {
		t.Fatal("Unbind from another user's name unbound")
	}
	if ok, _ := srv.Unbind(ch, tio.Group("")); !ok || srv.Bindings(ch).Groups != nil {
		t.Fatal("Unbind(Group(\"\")) left groups")
	}
	if ok, _ := srv.Unbind(ch, tio.All()); !ok || !reflect.DeepEqual(srv.Bindings(ch), tio.Bindings{}) {
		t.Fatalf("Unbind(All) left %+v", srv.Bindings(ch))
	}
	if ok, _ := srv.Unbind(ch, tio.All()); ok {
		t.Fatal("Unbind(All) of an unbound channel reported something")
	}
	if _, err := srv.Send(tio.Target{}, &codec.Packet{}); !errors.Is(err, tio.ErrInvalidTarget) {
		t.Fatalf("Send to the zero Target = %v", err)
	}
}

// A blocking send called on an event loop — from an inline handler or a
// hook — fails at once with channel.ErrOnLoop and sends nothing; from a
// pooled handler it works.
func TestSendWaitOnTheLoopFailsFast(t *testing.T) {
	type result struct {
		res tio.SendResult
		err error
		ch  error
	}
	results := make(chan result, 4)
	var srvp atomic.Pointer[tio.Server]
	mux := handler.NewMux()
	wait := func(ch *channel.Channel) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := srvp.Load().SendWait(ctx, tio.All(), &codec.Packet{Type: 2, Body: []byte("all")})
		results <- result{res, err, ch.SendWait(ctx, &codec.Packet{Type: 2, Body: []byte("one")})}
	}
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, _ *codec.Packet) { wait(ch) }))
	mux.HandleFunc(3, func(ch *channel.Channel, _ *codec.Packet) { wait(ch) })
	srv := tiotest.NewServer(t, mux, tio.WithOnConnect(func(ch *channel.Channel) { wait(ch) }))
	srvp.Store(srv)
	c := tiotest.DialBinary(t, srv)
	for _, where := range []string{"hook", "inline handler"} {
		if where == "inline handler" {
			c.Send(1, nil)
		}
		begin := time.Now()
		r := <-results
		if !errors.Is(r.err, channel.ErrOnLoop) || !errors.Is(r.ch, channel.ErrOnLoop) || r.res != (tio.SendResult{}) {
			t.Fatalf("%s: SendWait = %+v, %v; channel SendWait = %v; want ErrOnLoop", where, r.res, r.err, r.ch)
		}
		if d := time.Since(begin); d > time.Second {
			t.Fatalf("%s: failing took %v", where, d)
		}
	}
	c.Send(3, nil)
	if r := <-results; r.err != nil || r.ch != nil || r.res != (tio.SendResult{OK: 1}) {
		t.Fatalf("from the pool: %+v, %v, %v", r.res, r.err, r.ch)
	}
	for _, want := range []string{"all", "one"} {
		if p := c.Recv(); string(p.Body) != want {
			t.Fatalf("got %q, want %q (nothing from the refused sends)", p.Body, want)
		}
	}
}

// Hooks set by several options all run, in the order given.
func TestHooksCombine(t *testing.T) {
	var order []string
	done := make(chan struct{})
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithOnConnect(func(*channel.Channel) { order = append(order, "a") }),
		tio.WithHooks(tio.Hooks{OnConnected: func(*channel.Channel) { order = append(order, "b") }}),
		tio.WithOnConnect(func(*channel.Channel) { order = append(order, "c"); close(done) }),
	)
	tiotest.DialBinary(t, srv)
	<-done
	if !slices.Equal(order, []string{"a", "b", "c"}) {
		t.Fatalf("hooks ran %v", order)
	}
}
