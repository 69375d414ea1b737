package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// wsClient is a chat client of a running command, over WebSocket.
type wsClient struct {
	t    *testing.T
	conn net.Conn
	rw   io.ReadWriter
	ctx  context.Context
}

func wsDial(t *testing.T, ctx context.Context, url, user string) *wsClient {
	t.Helper()
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	c := &wsClient{t: t, conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}, ctx: ctx}
	c.send(`{"cmd":"login","user":%q}`, user)
	c.wait("welcome", func(map[string]any) bool { return true })
	return c
}

func (c *wsClient) send(format string, args ...any) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.conn, fmt.Appendf(nil, format, args...)); err != nil {
		c.t.Fatal(err)
	}
}

// wait reads events until one of kind event satisfies ok (skipping others),
// until the test's context ends.
func (c *wsClient) wait(event string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	return c.waitFor(event, func(e map[string]any) bool { return e["event"] == event && ok(e) })
}

// waitFor reads events until one satisfies ok.
func (c *wsClient) waitFor(what string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline, _ := c.ctx.Deadline()
	_ = c.conn.SetReadDeadline(deadline)
	for {
		b, err := wsutil.ReadServerText(c.rw)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		var e map[string]any
		if err := json.Unmarshal(b, &e); err != nil {
			c.t.Fatalf("event %q: %v", b, err)
		}
		if ok(e) {
			return e
		}
	}
}

// Two runs of the command are one chat: the first embeds NATS and listens
// for other nodes (-cluster -nats-listen), the second joins it (-nats); a
// room spans them and a DM crosses them.
func TestCommandCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := run(t, ctx, append(listens, "NATS for other nodes"),
		"-addr", "127.0.0.1:0", "-cluster", "-nats-listen", "127.0.0.1:0", "-node", "a")
	natsURL := a.urls["NATS for other nodes"]
	if !strings.HasPrefix(natsURL, "nats://127.0.0.1:") {
		t.Fatalf("NATS at %q", natsURL)
	}
	b := run(t, ctx, listens, "-addr", "127.0.0.1:0", "-nats", natsURL, "-node", "b")

	alice := wsDial(t, ctx, a.urls["WebSocket"], "alice")
	alice.send(`{"cmd":"join","room":"lobby"}`)
	alice.wait("online", func(map[string]any) bool { return true })
	bob := wsDial(t, ctx, b.urls["WebSocket"], "bob")
	for { // until b knows a's roster of the room
		bob.send(`{"cmd":"who","room":"lobby"}`)
		e := bob.wait("online", func(map[string]any) bool { return true })
		if fmt.Sprint(e["users"]) == "[alice]" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	bob.send(`{"cmd":"join","room":"lobby"}`)
	if e := bob.wait("online", func(map[string]any) bool { return true }); fmt.Sprint(e["users"]) != "[alice bob]" {
		t.Fatalf("%v", e)
	}
	alice.wait("joined", func(e map[string]any) bool { return e["user"] == "bob" })

	alice.send(`{"cmd":"say","room":"lobby","text":"hi from a"}`)
	bob.wait("message", func(e map[string]any) bool { return e["text"] == "hi from a" && e["from"] == "alice" })
	bob.send(`{"cmd":"say","room":"lobby","text":"hi from b"}`)
	alice.wait("message", func(e map[string]any) bool { return e["text"] == "hi from b" && e["from"] == "bob" })

	for { // alice's presence reaches b within a heartbeat
		bob.send(`{"cmd":"dm","to":"alice","text":"psst","ref":"d"}`)
		e := bob.waitFor("the DM's answer", func(e map[string]any) bool { return e["ref"] == "d" })
		if e["event"] == "ack" {
			break
		}
		if e["code"] != "offline" {
			t.Fatalf("%v", e)
		}
		time.Sleep(50 * time.Millisecond)
	}
	alice.wait("dm", func(e map[string]any) bool { return e["text"] == "psst" && e["from"] == "bob" })

	// The clients close first: a WebSocket client that does not answer the
	// server's close frame would hold each shutdown for the close timeout.
	bob.conn.Close()
	alice.wait("left", func(e map[string]any) bool { return e["user"] == "bob" })
	b.stop(t)
	alice.conn.Close()
	a.stop(t)
}

// -nats joins a NATS server, -nats-listen is an embedded one's address:
// both at once is a usage error.
func TestCommandFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-addr", "127.0.0.1:0", "-nats", "nats://127.0.0.1:1", "-nats-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TIO_IM_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "-nats-listen") {
		t.Fatalf("%v: %s", err, out)
	}
}
