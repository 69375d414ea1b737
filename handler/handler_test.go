package handler_test

import (
	"testing"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
)

func TestMuxRoutes(t *testing.T) {
	var got []string
	rec := func(s string) handler.HandlerFunc {
		return func(*channel.Channel, *codec.Packet) { got = append(got, s) }
	}
	m := handler.NewMux()
	m.Handle(1, rec("one"))
	m.Handle(300, handler.Inline(rec("three hundred")))
	for _, tc := range []struct {
		t      codec.Type
		want   string
		inline bool
	}{{1, "one", false}, {300, "three hundred", true}} {
		h, inline := m.Route(&codec.Packet{Type: tc.t})
		if h == nil || inline != tc.inline {
			t.Fatalf("Route(%d) = %v, %v", tc.t, h, inline)
		}
		h.ServePacket(nil, &codec.Packet{Type: tc.t})
		if got[len(got)-1] != tc.want {
			t.Fatalf("Route(%d) ran %q", tc.t, got[len(got)-1])
		}
	}
	if h, _ := m.Route(&codec.Packet{Type: 2}); h != nil {
		t.Fatal("unregistered type routed without a fallback")
	}
	m.NotFound(handler.Inline(rec("fallback")))
	if h, inline := m.Route(&codec.Packet{Type: 2}); h == nil || !inline {
		t.Fatal("fallback not routed")
	}
	m.ServePacket(nil, &codec.Packet{Type: 999})
	if got[len(got)-1] != "fallback" {
		t.Fatalf("ServePacket ran %q", got[len(got)-1])
	}
}

func TestChainOrder(t *testing.T) {
	var trace []string
	mw := func(s string) handler.Middleware {
		return func(next handler.Handler) handler.Handler {
			return handler.HandlerFunc(func(ch *channel.Channel, p *codec.Packet) {
				trace = append(trace, s)
				next.ServePacket(ch, p)
			})
		}
	}
	h := handler.Chain(handler.HandlerFunc(func(*channel.Channel, *codec.Packet) { trace = append(trace, "h") }), mw("outer"), mw("inner"))
	h.ServePacket(nil, &codec.Packet{})
	if len(trace) != 3 || trace[0] != "outer" || trace[1] != "inner" || trace[2] != "h" {
		t.Fatalf("trace %v", trace)
	}
}

// A JSONMux routes by a field of the body, keeps each handler's inline
// flag, and tells unknown commands from bodies that are not JSON; nested in
// a Mux it is asked per packet.
func TestJSONMux(t *testing.T) {
	var got []string
	rec := func(s string) handler.HandlerFunc {
		return func(*channel.Channel, *codec.Packet) { got = append(got, s) }
	}
	j := handler.NewJSONMux("cmd")
	j.Handle("login", rec("login"))
	j.Handle("say", handler.Inline(rec("say")))
	j.NotFound(rec("unknown"))
	j.Malformed(handler.Inline(rec("malformed")))
	mux := handler.NewMux()
	mux.Handle(0x100, j)
	for _, c := range []struct {
		body, want string
		inline     bool
	}{
		{`{"cmd":"login","user":"a"}`, "login", false},
		{`{"text":"hi","cmd":"say"}`, "say", true},
		{`{"cmd":"nope"}`, "unknown", false},
		{`{"cmd":7}`, "unknown", false},
		{`{"user":"a"}`, "unknown", false},
		{`{"cmd":"login"`, "malformed", true},
		{`not json`, "malformed", true},
		{`{"x":{"cmd":"say"}}`, "unknown", false}, // only the top level counts
	} {
		h, inline := mux.Route(&codec.Packet{Type: 0x100, Body: []byte(c.body)})
		if h == nil || inline != c.inline {
			t.Fatalf("%s: handler %v, inline %v", c.body, h, inline)
		}
		h.ServePacket(nil, &codec.Packet{Body: []byte(c.body)})
		if got[len(got)-1] != c.want {
			t.Fatalf("%s routed to %q, want %q", c.body, got[len(got)-1], c.want)
		}
	}
}

func BenchmarkJSONMuxRoute(b *testing.B) {
	j := handler.NewJSONMux("cmd")
	j.HandleFunc("say", func(*channel.Channel, *codec.Packet) {})
	p := &codec.Packet{Body: []byte(`{"cmd":"say","room":"lobby","text":"hello, everyone in the room"}`)}
	b.ReportAllocs()
	for b.Loop() {
		j.Route(p)
	}
}
