package imserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/example/im/imserver"
	"github.com/tiogo/tio/tiotest"
)

// start runs a chat server on a free port of 127.0.0.1 for the test.
func start(t *testing.T, opts ...imserver.Option) *imserver.Server {
	t.Helper()
	srv := imserver.New("127.0.0.1:0", append([]imserver.Option{imserver.WithLogger(tiotest.Logger(t))}, opts...)...)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// ev is one server event.
type ev map[string]any

func (e ev) str(k string) string { s, _ := e[k].(string); return s }

// client is a WebSocket chat client for tests.
type client struct {
	t *testing.T
	c *tiotest.WSConn
}

func dial(t *testing.T, srv *imserver.Server, path string) *client {
	t.Helper()
	return &client{t: t, c: tiotest.DialWebSocket(t, srv.Server, path)}
}

// login dials and logs in as user, checking the welcome.
func login(t *testing.T, srv *imserver.Server, user string) *client {
	t.Helper()
	c := dial(t, srv, "/ws")
	c.send(`{"cmd":"login","user":%q}`, user)
	if w := c.expect("welcome"); w.str("user") != user {
		t.Fatalf("welcome %v", w)
	}
	return c
}

// send sends a command, formatted.
func (c *client) send(format string, args ...any) {
	c.t.Helper()
	c.c.SendText(fmt.Sprintf(format, args...))
}

// next reads the next event.
func (c *client) next() ev {
	c.t.Helper()
	op, b := c.c.Recv()
	if op != ws.OpText {
		c.t.Fatalf("got a %v message, want text", op)
	}
	var e ev
	if err := json.Unmarshal(b, &e); err != nil {
		c.t.Fatalf("event %q: %v", b, err)
	}
	return e
}

// expect reads the next event and checks its kind.
func (c *client) expect(event string) ev {
	c.t.Helper()
	e := c.next()
	if e.str("event") != event {
		c.t.Fatalf("got %v, want a %q event", e, event)
	}
	return e
}

// expectError reads the next event and checks that it is an error with
// code.
func (c *client) expectError(code string) ev {
	c.t.Helper()
	e := c.expect("error")
	if e.str("code") != code {
		c.t.Fatalf("got %v, want error %q", e, code)
	}
	return e
}

// join joins room and reads the answer: joined, history, online.
func (c *client) join(room string) (history []any, online []string) {
	c.t.Helper()
	c.send(`{"cmd":"join","room":%q}`, room)
	c.expect("joined")
	history = c.expect("history")["messages"].([]any)
	for _, u := range c.expect("online")["users"].([]any) {
		online = append(online, u.(string))
	}
	return history, online
}

// quiet checks that nothing arrives for a moment: a ping's pong comes
// first.
func (c *client) quiet() {
	c.t.Helper()
	c.send(`{"cmd":"ping","ref":"q"}`)
	if e := c.next(); e.str("event") != "pong" || e.str("ref") != "q" {
		c.t.Fatalf("expected nothing, got %v", e)
	}
}

func TestRoomChat(t *testing.T) {
	srv := start(t)
	alice := login(t, srv, "alice")
	bob := dial(t, srv, "/ws?user=bob") // login from the upgrade request
	if w := bob.expect("welcome"); w.str("user") != "bob" || w["admin"] != false {
		t.Fatalf("welcome %v", w)
	}
	if h, on := alice.join("lobby"); len(h) != 0 || !slices.Equal(on, []string{"alice"}) {
		t.Fatalf("history %v, online %v", h, on)
	}
	if _, on := bob.join("lobby"); !slices.Equal(on, []string{"alice", "bob"}) {
		t.Fatalf("online %v", on)
	}
	if e := alice.expect("joined"); e.str("user") != "bob" || e.str("room") != "lobby" {
		t.Fatalf("%v", e)
	}

	// from comes from the binding, whatever the command says; text is kept
	// as sent, HTML and all.
	alice.send(`{"cmd":"say","room":"lobby","text":"<b>hi</b> & <script>x()</script>","from":"mallory","ref":"c1"}`)
	ack := alice.expect("ack")
	if ack.str("ref") != "c1" || ack["id"] == nil || ack["ts"] == nil {
		t.Fatalf("ack %v", ack)
	}
	m := bob.expect("message")
	if m.str("from") != "alice" || m.str("text") != "<b>hi</b> & <script>x()</script>" || m.str("room") != "lobby" ||
		m["id"] != ack["id"] || m["ts"] != ack["ts"] {
		t.Fatalf("message %v, ack %v", m, ack)
	}
	alice.quiet() // the sender does not get its own message back, only the ack

	bob.send(`{"cmd":"typing","room":"lobby"}`)
	if e := alice.expect("typing"); e.str("user") != "bob" {
		t.Fatalf("%v", e)
	}
	bob.send(`{"cmd":"who","room":"lobby"}`)
	if e := bob.expect("online"); fmt.Sprint(e["users"]) != "[alice bob]" {
		t.Fatalf("%v", e)
	}
	bob.send(`{"cmd":"rooms"}`)
	if e := bob.expect("rooms"); fmt.Sprint(e["rooms"]) != "[map[room:lobby users:2]]" {
		t.Fatalf("%v", e)
	}

	bob.send(`{"cmd":"leave","room":"lobby"}`)
	bob.expect("left")
	if e := alice.expect("left"); e.str("user") != "bob" {
		t.Fatalf("%v", e)
	}
	bob.send(`{"cmd":"say","room":"lobby","text":"still here?"}`)
	bob.expectError("not_in_room")
	alice.quiet()
	if on := srv.Online("lobby"); !slices.Equal(on, []string{"alice"}) {
		t.Fatalf("online %v", on)
	}
}

// A room keeps its last 50 messages and sends them on join, oldest first.
func TestHistory(t *testing.T) {
	srv := start(t, imserver.WithLimits(imserver.Limits{Rate: 1000, Burst: 1000, ConnRate: 1000, ConnBurst: 1000}))
	alice := login(t, srv, "alice")
	alice.join("r")
	for i := range 60 {
		alice.send(`{"cmd":"say","room":"r","text":"m%d"}`, i)
		alice.expect("ack")
	}
	bob := login(t, srv, "bob")
	h, _ := bob.join("r")
	if len(h) != 50 {
		t.Fatalf("history of %d messages", len(h))
	}
	last := 0.0
	for i, x := range h {
		m := x.(map[string]any)
		if m["text"] != fmt.Sprintf("m%d", i+10) || m["from"] != "alice" || m["event"] != "message" || m["id"].(float64) <= last {
			t.Fatalf("history[%d] = %v", i, m)
		}
		last = m["id"].(float64)
	}
}

// A DM reaches every connection of its recipient and the sender's other
// connections; the sending one gets the ack.
func TestDMReachesEveryTab(t *testing.T) {
	srv := start(t)
	alice1, alice2 := login(t, srv, "alice"), login(t, srv, "alice")
	bob1, bob2 := login(t, srv, "bob"), login(t, srv, "bob")
	carol := login(t, srv, "carol")

	alice1.send(`{"cmd":"dm","to":"bob","text":"psst","ref":"d1"}`)
	ack := alice1.expect("ack")
	for _, c := range []*client{bob1, bob2, alice2} {
		m := c.expect("dm")
		if m.str("from") != "alice" || m.str("to") != "bob" || m.str("text") != "psst" || m["id"] != ack["id"] {
			t.Fatalf("dm %v, ack %v", m, ack)
		}
	}
	for _, c := range []*client{alice1, carol} {
		c.quiet()
	}
	carol.send(`{"cmd":"dm","to":"dave","text":"hello?","ref":"d2"}`)
	if e := carol.expectError("offline"); e.str("ref") != "d2" {
		t.Fatalf("%v", e)
	}
	bob2.send(`{"cmd":"typing","to":"alice"}`)
	for _, c := range []*client{alice1, alice2} {
		if e := c.expect("typing"); e.str("user") != "bob" || e.str("to") != "alice" {
			t.Fatalf("%v", e)
		}
	}
}

// A user is in a room while any of their connections is.
func TestPresenceOverTabs(t *testing.T) {
	srv := start(t)
	alice := login(t, srv, "alice")
	alice.join("r")
	bob1, bob2 := login(t, srv, "bob"), login(t, srv, "bob")
	bob1.join("r")
	alice.expect("joined")
	if _, on := bob2.join("r"); !slices.Equal(on, []string{"alice", "bob"}) {
		t.Fatalf("online %v", on)
	}
	alice.quiet() // bob was in already

	alice.send(`{"cmd":"say","room":"r","text":"hi bobs"}`)
	alice.expect("ack")
	bob1.expect("message")
	bob2.expect("message")

	bob1.c.Close()
	alice.quiet()
	tiotest.Eventually(t, "bob's first tab gone", func() bool { return srv.Count(tio.User("bob")) == 1 })
	alice.quiet()
	if on := srv.Online("r"); !slices.Equal(on, []string{"alice", "bob"}) {
		t.Fatalf("online %v", on)
	}
	bob2.c.Close()
	if e := alice.expect("left"); e.str("user") != "bob" {
		t.Fatalf("%v", e)
	}
}

// An admin's kick closes every connection of a user with words the page
// shows, tells the rooms, and keeps the user out for a while.
func TestKick(t *testing.T) {
	srv := start(t, imserver.WithAdminToken("s3cret"))
	mod := dial(t, srv, "/ws")
	mod.send(`{"cmd":"login","user":"mod","token":"wrong"}`)
	mod.expectError("bad_admin_token")
	mod.send(`{"cmd":"login","user":"mod","token":"s3cret"}`)
	if w := mod.expect("welcome"); w["admin"] != true {
		t.Fatalf("%v", w)
	}
	mod.join("r")
	bob1, bob2 := login(t, srv, "bob"), login(t, srv, "bob")
	bob1.join("r")
	mod.expect("joined")

	bob2.send(`{"cmd":"kick","user":"mod"}`)
	bob2.expectError("forbidden")

	mod.send(`{"cmd":"kick","user":"bob","reason":"spam"}`)
	if e := mod.expect("kicked"); e.str("user") != "bob" || e["conns"] != 2.0 {
		t.Fatalf("%v", e)
	}
	for _, c := range []*client{bob1, bob2} {
		if ce := c.c.ExpectClose(); ce.Code != ws.StatusNormalClosure || ce.Reason != "kicked by an admin: spam" {
			t.Fatalf("close %+v", ce)
		}
	}
	if e := mod.expect("left"); e.str("user") != "bob" {
		t.Fatalf("%v", e)
	}
	again := dial(t, srv, "/ws")
	again.send(`{"cmd":"login","user":"bob"}`)
	again.expectError("banned")
}

// Bad input gets a precise error event and disturbs nobody else.
func TestBadInput(t *testing.T) {
	srv := start(t, imserver.WithLimits(imserver.Limits{MaxText: 100}))
	witness := login(t, srv, "witness")
	witness.join("r")

	anon := dial(t, srv, "/ws")
	for _, c := range []struct{ in, code, text string }{
		{`{"cmd":"say"`, "bad_json", ""},
		{`hello`, "bad_json", ""},
		{`[1,2]`, "bad_request", "object"},
		{`{"text":"hi"}`, "bad_request", `"cmd"`},
		{`{"cmd":7}`, "bad_request", "string"},
		{`{"cmd":"fly"}`, "unknown_cmd", `"fly"`},
		{`{"cmd":"say","room":"r","text":"hi"}`, "not_logged_in", "log in"},
		{`{"cmd":"login"}`, "bad_request", "user"},
		{`{"cmd":"login","user":5}`, "bad_request", `"user" must be a string`},
		{`{"cmd":"login","user":"<img src=x onerror=alert(1)>"}`, "bad_name", "letters"},
		{`{"cmd":"login","user":"` + strings.Repeat("a", 25) + `"}`, "bad_name", "24"},
		{`{"cmd":"login","user":"admin","token":"x"}`, "bad_admin_token", ""},
	} {
		anon.c.SendText(c.in)
		e := anon.expectError(c.code)
		if !strings.Contains(e.str("text"), c.text) {
			t.Errorf("%s: %v, want text with %q", c.in, e, c.text)
		}
	}
	anon.c.SendBinary([]byte{7, 1, 2})
	anon.expectError("bad_request")

	eve := login(t, srv, "eve")
	eve.send(`{"cmd":"login","user":"alice"}`)
	eve.expectError("already_logged_in")
	eve.join("r")
	witness.expect("joined")
	for _, c := range []struct{ in, code string }{
		{`{"cmd":"join"}`, "bad_name"},
		{`{"cmd":"join","room":"a b"}`, "bad_name"},
		{`{"cmd":"say","room":"r"}`, "bad_text"},
		{`{"cmd":"say","room":"r","text":"   "}`, "bad_text"},
		{`{"cmd":"say","room":"r","text":"bell\u0007"}`, "bad_text"},
		{`{"cmd":"say","room":"r","text":"csi\u009b2J"}`, "bad_text"},
		{`{"cmd":"say","room":"r","text":"` + strings.Repeat("x", 101) + `","ref":"big"}`, "too_long"},
		{`{"cmd":"say","room":"elsewhere","text":"hi"}`, "not_in_room"},
		{`{"cmd":"say","room":"r","text":"hi","ref":"` + strings.Repeat("r", 65) + `"}`, "bad_request"},
		{`{"cmd":"leave","room":"elsewhere"}`, "not_in_room"},
		{`{"cmd":"dm","text":"hi"}`, "bad_name"},
		{`{"cmd":"typing"}`, "bad_request"},
		{`{"cmd":"kick","user":"witness"}`, "forbidden"},
	} {
		eve.c.SendText(c.in)
		eve.expectError(c.code)
	}
	// An oversized frame closes that connection, with a reason.
	eve.c.SendText(`{"cmd":"say","room":"r","text":"` + strings.Repeat("x", 20<<10) + `"}`)
	if ce := eve.c.ExpectClose(); ce.Code != ws.StatusMessageTooBig {
		t.Fatalf("close %+v", ce)
	}
	// The witness saw eve come and go and nothing else, and still chats.
	if e := witness.expect("left"); e.str("user") != "eve" {
		t.Fatalf("%v", e)
	}
	witness.send(`{"cmd":"say","room":"r","text":"all quiet"}`)
	witness.expect("ack")
}

// Each user has a message budget over all their connections; a connection
// that floods frames of any kind is closed.
func TestRateLimits(t *testing.T) {
	// A token every 100 s: a slow run of the test earns none.
	srv := start(t, imserver.WithLimits(imserver.Limits{Rate: 0.01, Burst: 4, ConnRate: 1, ConnBurst: 40}))
	a1, a2 := login(t, srv, "alice"), login(t, srv, "alice")
	a1.join("r")
	a2.join("r")
	bob := login(t, srv, "bob")
	bob.join("r")
	oks, limited := 0, 0
	for i := range 6 {
		c := []*client{a1, a2}[i%2]
		c.send(`{"cmd":"say","room":"r","text":"m%d","ref":"r%d"}`, i, i)
		for {
			e := c.next()
			if e.str("event") == "ack" {
				oks++
				break
			}
			if e.str("event") == "error" {
				if e.str("code") != "rate_limited" || e.str("ref") != fmt.Sprintf("r%d", i) {
					t.Fatalf("%v", e)
				}
				limited++
				break
			}
		}
	}
	if oks != 4 || limited != 2 {
		t.Fatalf("%d sent, %d limited; want 4 and 2", oks, limited)
	}
	// Flooding pings: past the connection's burst it is closed. The flood
	// goes in one write: bytes that came after the server's close frame
	// would end its wait for the answer, and the bytes still coming reset
	// the connection, the close frame lost with it.
	var flood bytes.Buffer
	for range 50 {
		_ = ws.WriteFrame(&flood, ws.MaskFrame(ws.NewTextFrame([]byte(`{"cmd":"ping"}`))))
	}
	if _, err := bob.c.Write(flood.Bytes()); err != nil {
		t.Fatal(err)
	}
	for {
		op, b, err := bob.c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*tiotest.CloseError); !ok || ce.Code != ws.StatusPolicyViolation || ce.Reason != "rate limited" {
				t.Fatalf("%v", err)
			}
			break
		}
		if op != ws.OpText {
			t.Fatalf("op %v %q", op, b)
		}
	}
}

// The binary protocol carries the same JSON commands as packets of type
// websocket.TypeText, and chats with WebSocket users.
func TestBinaryProtocol(t *testing.T) {
	srv := start(t)
	web := login(t, srv, "web")
	web.join("r")
	term := tiotest.DialBinary(t, srv.Server)
	recv := func() ev {
		t.Helper()
		p := term.Recv()
		if p.Type != websocket.TypeText {
			t.Fatalf("packet type %#x", p.Type)
		}
		var e ev
		if err := json.Unmarshal(p.Body, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	term.Send(websocket.TypeText, []byte(`{"cmd":"login","user":"term"}`))
	if e := recv(); e.str("event") != "welcome" {
		t.Fatalf("%v", e)
	}
	term.Send(websocket.TypeText, []byte(`{"cmd":"join","room":"r"}`))
	for _, want := range []string{"joined", "history", "online"} {
		if e := recv(); e.str("event") != want {
			t.Fatalf("%v, want %s", e, want)
		}
	}
	web.expect("joined")
	web.send(`{"cmd":"say","room":"r","text":"hello terminal"}`)
	web.expect("ack")
	if e := recv(); e.str("text") != "hello terminal" || e.str("from") != "web" {
		t.Fatalf("%v", e)
	}
	term.Send(websocket.TypeText, []byte(`{"cmd":"say","room":"r","text":"hello browser"}`))
	if e := recv(); e.str("event") != "ack" {
		t.Fatalf("%v", e)
	}
	if e := web.expect("message"); e.str("text") != "hello browser" || e.str("from") != "term" {
		t.Fatalf("%v", e)
	}
	term.Send(9, []byte("raw"))
	if e := recv(); e.str("code") != "bad_request" {
		t.Fatalf("%v", e)
	}
}

// Silent connections are closed by the heartbeat timeout; pinging ones
// stay.
func TestHeartbeat(t *testing.T) {
	srv := start(t, imserver.WithHeartbeat(600*time.Millisecond))
	silent := login(t, srv, "silent")
	chatty := login(t, srv, "chatty")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 8 {
			time.Sleep(150 * time.Millisecond)
			chatty.c.SendText(`{"cmd":"ping"}`)
		}
	}()
	if ce := silent.c.ExpectClose(); ce.Code != ws.StatusPolicyViolation || ce.Reason != "heartbeat timeout" {
		t.Fatalf("close %+v", ce)
	}
	<-done
	for range 8 {
		chatty.expect("pong")
	}
}

// One port: the page, /metrics, /healthz; upgrades at /ws only.
func TestHTTP(t *testing.T) {
	srv := start(t)
	base := "http://" + srv.Addr().String()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, "<!doctype html>") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("/: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	for _, f := range []string{"/app.js", "/style.css"} {
		if resp, _ := get(f); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", f, resp.StatusCode)
		}
	}
	if resp, body := get("/metrics"); resp.StatusCode != 200 || !strings.Contains(body, "tio_connections") {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("/ws"); resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("/ws: %d", resp.StatusCode)
	}
	if _, err := tiotest.DialWebSocketErr(t, srv.Server, "/chat"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("upgrade at /chat: %v", err)
	}
}

// Rooms, rooms per user and connections per user are bounded.
func TestBounds(t *testing.T) {
	srv := start(t, imserver.WithLimits(imserver.Limits{MaxRooms: 3, MaxRoomsPerUser: 2, MaxConnsPerUser: 2, MaxUsersPerRoom: 2}))
	a := login(t, srv, "a")
	a.join("r1")
	a.join("r2")
	a.send(`{"cmd":"join","room":"r3","ref":"j3"}`)
	if e := a.expectError("too_many_rooms"); e.str("ref") != "j3" {
		t.Fatalf("%v", e)
	}
	b := login(t, srv, "b")
	b.join("r1")
	a.expect("joined")
	c := login(t, srv, "c")
	c.send(`{"cmd":"join","room":"r1"}`)
	c.expectError("room_full")
	c.join("r3")
	d := login(t, srv, "d")
	d.send(`{"cmd":"join","room":"r4"}`) // r1, r2, r3 all in use
	d.expectError("too_many_rooms")
	c.send(`{"cmd":"leave","room":"r3"}`)
	c.expect("left")
	d.join("r4") // r3 was empty: forgotten
	if n := srv.Rooms(); n != 3 {
		t.Fatalf("%d rooms", n)
	}
	login(t, srv, "a")
	extra := dial(t, srv, "/ws")
	extra.send(`{"cmd":"login","user":"a"}`)
	extra.expectError("too_many_conns")
}

// Connections per IP address are bounded when asked.
func TestConnsPerIP(t *testing.T) {
	srv := start(t, imserver.WithLimits(imserver.Limits{MaxConnsPerIP: 2}))
	login(t, srv, "a")
	login(t, srv, "b")
	if _, err := tiotest.DialWebSocketErr(t, srv.Server, "/ws"); err == nil {
		t.Fatal("a third connection from 127.0.0.1 was accepted")
	}
}
