package imcli_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiogo/tio/example/im/imcli"
	"github.com/tiogo/tio/example/im/imserver"
	"github.com/tiogo/tio/tiotest"
)

func startIM(t *testing.T, addr string) *imserver.Server {
	t.Helper()
	srv := imserver.New(addr, imserver.WithLogger(tiotest.Logger(t)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(srv) })
	return srv
}

func stop(srv *imserver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// screen is what the terminal shows.
type screen struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// terminal runs the client in-process: lines written to it are typed.
type terminal struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *screen
	done chan error
}

func runTerminal(t *testing.T, o imcli.Options) *terminal {
	t.Helper()
	r, w := io.Pipe()
	term := &terminal{t: t, in: w, out: &screen{}, done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	go func() { term.done <- imcli.Run(ctx, o, r, term.out) }()
	t.Cleanup(func() {
		cancel()
		_ = w.Close()
		select {
		case <-term.done:
		case <-time.After(10 * time.Second):
			t.Error("the terminal client did not stop")
		}
	})
	return term
}

func (term *terminal) typeLine(s string) {
	term.t.Helper()
	if _, err := io.WriteString(term.in, s+"\n"); err != nil {
		term.t.Fatal(err)
	}
}

// see waits until the screen shows s.
func (term *terminal) see(s string) { term.t.Helper(); term.seeN(s, 1) }

// seeN waits until the screen shows s n times.
func (term *terminal) seeN(s string, n int) {
	term.t.Helper()
	tiotest.EventuallyWithin(term.t, 10*time.Second, "the terminal shows "+s, func() bool {
		return strings.Count(term.out.String(), s) >= n
	})
}

// web is a WebSocket user, as the page is.
type web struct {
	t *testing.T
	c *tiotest.WSConn
}

func login(t *testing.T, srv *imserver.Server, user string) *web {
	t.Helper()
	w := &web{t: t, c: tiotest.DialWebSocket(t, srv.Server, "/ws?user="+user)}
	w.until("welcome", "")
	w.c.SendText(`{"cmd":"join","room":"lobby"}`)
	w.until("online", "")
	return w
}

// until reads events until one of kind whose text (or user) holds s.
func (w *web) until(kind, s string) map[string]any {
	w.t.Helper()
	for {
		_, b := w.c.Recv()
		var e map[string]any
		if err := json.Unmarshal(b, &e); err != nil {
			w.t.Fatal(err)
		}
		text, _ := e["text"].(string)
		user, _ := e["user"].(string)
		if e["event"] == kind && (strings.Contains(text, s) || strings.Contains(user, s)) {
			return e
		}
	}
}

// The terminal client chats with a WebSocket user: room messages both
// ways, a DM, who is there.
func TestTerminalChats(t *testing.T) {
	srv := startIM(t, "127.0.0.1:0")
	alice := login(t, srv, "alice")
	term := runTerminal(t, imcli.Options{Addr: srv.Addr().String(), User: "carol"})
	term.see("* logged in as carol")
	term.see("* in #lobby: alice, carol")
	alice.until("joined", "carol")

	term.typeLine("hello from the terminal")
	if m := alice.until("message", "hello from the terminal"); m["from"] != "carol" || m["room"] != "lobby" {
		t.Fatalf("%v", m)
	}
	alice.c.SendText(`{"cmd":"say","room":"lobby","text":"hi carol\nhow are you?"}`)
	term.see("#lobby <alice> hi carol\n      how are you?")
	term.typeLine("/dm alice psst")
	if m := alice.until("dm", "psst"); m["from"] != "carol" || m["to"] != "alice" {
		t.Fatalf("%v", m)
	}
	term.typeLine("/who")
	term.seeN("* in #lobby: alice, carol", 2)
	term.typeLine("/join dev")
	term.see("* in #dev: carol")
	term.typeLine("/frobnicate")
	term.see("! unknown command /frobnicate")
	term.typeLine("/quit")
	select {
	case err := <-term.done:
		if err != nil {
			t.Fatal(err)
		}
		term.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("/quit did not end the client")
	}
	alice.until("left", "carol")
}

// The server stops and starts again on the same port: the terminal
// reconnects, logs in, rejoins and goes on; a line typed meanwhile goes
// out after the rejoin.
func TestTerminalReconnects(t *testing.T) {
	srv := startIM(t, "127.0.0.1:0")
	addr := srv.Addr().String()
	term := runTerminal(t, imcli.Options{Addr: addr, User: "carol", Rooms: []string{"lobby", "dev"}})
	term.see("* in #dev: carol")
	stop(srv)
	term.see("reconnecting…")
	term.typeLine("typed while the server was down")
	srv = startIM(t, addr)
	alice := login(t, srv, "alice")
	if m := alice.until("message", "typed while the server was down"); m["from"] != "carol" {
		t.Fatalf("%v", m)
	}
	tiotest.Eventually(t, "carol back in both rooms", func() bool {
		return slices.Contains(srv.Online("lobby"), "carol") && slices.Contains(srv.Online("dev"), "carol")
	})
	alice.c.SendText(`{"cmd":"say","room":"lobby","text":"welcome back"}`)
	term.see("<alice> welcome back")
}

// A refused login ends the client with an error saying why.
func TestTerminalLoginRefused(t *testing.T) {
	srv := startIM(t, "127.0.0.1:0")
	term := runTerminal(t, imcli.Options{Addr: srv.Addr().String(), User: "no spaces"})
	select {
	case err := <-term.done:
		if !errors.Is(err, imcli.ErrLogin) || !strings.Contains(err.Error(), "bad_name") {
			t.Fatalf("%v", err)
		}
		term.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("a refused login did not end the client")
	}
}
