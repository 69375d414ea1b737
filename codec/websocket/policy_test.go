package websocket_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
)

// TestHosts checks Config.Hosts: a request for a host not listed is
// refused with 421 whatever its Origin, and the same origin is an Origin
// naming a listed host.
func TestHosts(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
		Mapping: websocket.Raw{},
		Hosts:   []string{"localhost:8080", "127.0.0.1:8080", "App.Example"},
		Origins: []string{"https://partner.example"},
		Logger:  slog.New(slog.DiscardHandler),
	})))
	host := func(h string, more ...string) string {
		return without("Host:", append([]string{"Host: " + h + "\r\n"}, more...)...)
	}
	for _, tc := range []strictCase{
		{"listed host, no Origin", host("localhost:8080"), st101},
		{"listed host, ASCII case", host("LOCALHOST:8080"), st101},
		{"listed host, same origin", host("127.0.0.1:8080", "Origin: http://127.0.0.1:8080\r\n"), st101},
		{"listed host, Origin naming another listed host", host("127.0.0.1:8080", "Origin: https://app.example\r\n"), st101},
		{"listed host, Origin listed in Origins", host("app.example", "Origin: https://partner.example\r\n"), st101},
		{"listed host, Origin naming no listed host", host("app.example", "Origin: https://evil.example\r\n"), st403},
		{"listed host, empty Origin", host("app.example", "Origin:\r\n"), st403},
		{"listed host, Unicode fold of a listed host", host("app.example", "Origin: https://\u212a.example\r\n"), st403},
		// DNS rebinding: the attacker's name in both Host and Origin.
		{"DNS rebinding", host("rebind.example:8080", "Origin: http://rebind.example:8080\r\n"), st421},
		{"host not listed, no Origin", host("rebind.example:8080"), st421},
		{"host not listed, Origin listed", host("rebind.example", "Origin: https://partner.example\r\n"), st421},
		{"listed name on another port", host("localhost:9999"), st421},
		{"listed name without its port", host("localhost"), st421},
		{"empty Host", host(""), st421},
		{"absolute target naming a listed host", request("GET http://app.example/ HTTP/1.1", "Origin: https://app.example\r\n"), st101},
		{"absolute target for another host, Host listed", "GET http://rebind.example/ HTTP/1.1\r\n" + strings.Join(upgradeHeaders()[1:], "") + "Host: app.example\r\n\r\n", st421},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.write([]byte(tc.req))
			expectStatus(t, rc, tc.status)
		})
	}
}

// TestDNSRebindingDefault shows what Hosts is for: under the default rule,
// a rebound name in both Host and Origin is taken for the same origin.
func TestDNSRebindingDefault(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))
	rc := dialRaw(t, addr)
	rc.write([]byte(without("Host:", "Host: rebind.example:8080\r\n", "Origin: http://rebind.example:8080\r\n")))
	expectStatus(t, rc, st101)
}

// records is a slog.Handler that keeps what it is given.
type records struct {
	mu sync.Mutex
	rs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.rs = append(h.rs, r)
	h.mu.Unlock()
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

func (h *records) take() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.rs
	h.rs = nil
	return rs
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// TestRefusalLogged: a refused origin or host is logged once at INFO,
// naming the setting that would allow it.
func TestRefusalLogged(t *testing.T) {
	rec := &records{}
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
		Hosts:  []string{"127.0.0.1", "app.example.com"},
		Logger: slog.New(rec),
	})))
	send := func(req string, status string) {
		t.Helper()
		rc := dialRaw(t, addr)
		rc.write([]byte(req))
		resp, body := rc.readResponse()
		if got := resp.Proto + " " + resp.Status; got != status {
			t.Fatalf("answered %q (%q), want %q", got, body, status)
		}
	}
	for range 3 {
		send(request("GET / HTTP/1.1", "Origin: https://other.example.com\r\n"), st403)
	}
	send(request("GET / HTTP/1.1", "Origin: https://app.example.com\r\n"), st101)
	send(request("GET / HTTP/1.1", "Origin: https://third.example.com\r\n"), st403)
	for range 2 {
		send(without("Host:", "Host: rebind.example\r\n"), st421)
		send(request("GET / HTTP/1.1", "Origin:\r\n"), st403)
	}
	rs := rec.take()
	var got []string
	for _, r := range rs {
		if r.Level != slog.LevelInfo {
			t.Errorf("logged at %v: %s", r.Level, r.Message)
		}
		got = append(got, attr(r, "origin")+"|"+attr(r, "host")+"|"+attr(r, "allow_with"))
	}
	want := []string{
		`https://other.example.com|127.0.0.1|websocket.Config.Origins: ["https://other.example.com"]`,
		`https://third.example.com|127.0.0.1|websocket.Config.Origins: ["https://third.example.com"]`,
		`|rebind.example|websocket.Config.Hosts: ["rebind.example"]`,
		`|127.0.0.1|`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRefusedCloseReason: policy refusals and malformed requests close
// with errors that the server tells apart (codec.ErrRefused and
// codec.ErrHandshake), as the close hook sees them.
func TestRefusedCloseReason(t *testing.T) {
	var mu sync.Mutex
	var errs []error
	_, addr := startServer(t, echoMux(),
		tio.WithCodec(websocket.New(websocket.Config{
			Hosts:  []string{"127.0.0.1"},
			Logger: slog.New(slog.DiscardHandler),
			OnHandshake: func(_ codec.Conn, r *websocket.Request) error {
				switch r.Path {
				case "/no":
					return errors.New("no")
				case "/reject":
					return websocket.Reject(http.StatusUnauthorized, "who?")
				}
				return nil
			},
		})),
		tio.WithOnClose(func(_ *channel.Channel, _ channel.Reason, err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}))
	for _, tc := range []struct {
		req     string
		refused bool
	}{
		{request("GET / HTTP/1.1", "Origin: http://evil.example\r\n"), true},
		{request("GET / HTTP/1.1", "Origin:\r\n"), true},
		{without("Host:", "Host: evil.example\r\n"), true},
		{request("GET /no HTTP/1.1"), true},
		{request("GET /reject HTTP/1.1"), true},
		{request("GET / HTTP/1.9"), false},
		{request("GET / HTTP/1.1", "Content-Length: 1\r\n"), false},
		{without("Upgrade:"), false},
	} {
		mu.Lock()
		errs = nil
		mu.Unlock()
		rc := dialRaw(t, addr)
		rc.write([]byte(tc.req))
		_, _ = rc.readResponse()
		rc.expectClosed()
		waitFor(t, "close hook", func() bool { mu.Lock(); defer mu.Unlock(); return len(errs) == 1 })
		mu.Lock()
		err := errs[0]
		mu.Unlock()
		if errors.Is(err, codec.ErrRefused) != tc.refused || errors.Is(err, codec.ErrHandshake) == tc.refused {
			t.Errorf("%.60q: closed with %v; refused by policy: %v", tc.req, err, tc.refused)
		}
	}
}
