package tio_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/tiotest"
)

// One hook binds a connection from its upgrade request — a path parameter,
// a cookie — or refuses it with a status; the binding is there by the time
// the connection is ready.
func TestWithUpgradeBindsFromTheRequest(t *testing.T) {
	var srvp atomic.Pointer[tio.Server]
	connected := make(chan tio.Bindings, 1)
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithUpgrade(func(ch *channel.Channel, r *tws.Request) error {
			params, ok := r.Match("/ws/{room}")
			if !ok {
				return tws.Reject(http.StatusNotFound, "no such endpoint")
			}
			c, err := r.Cookie("user")
			if err != nil {
				return tws.Reject(http.StatusUnauthorized, "log in first")
			}
			if err := srvp.Load().Bind(ch, tio.User(c.Value)); err != nil {
				return err
			}
			return srvp.Load().Bind(ch, tio.Group(params["room"]))
		}),
		tio.WithOnConnect(func(ch *channel.Channel) { connected <- srvp.Load().Bindings(ch) }))
	srvp.Store(srv)
	tiotest.DialWebSocket(t, srv, "/ws/lobby", "Cookie: theme=dark; user=alice")
	if b := <-connected; b.User != "alice" || !b.InGroup("lobby") {
		t.Fatalf("bindings when connected: %+v", b)
	}
	for _, c := range []struct {
		path, cookie, status string
	}{{"/elsewhere", "user=bob", "404"}, {"/ws/lobby", "", "401"}} {
		var hdr []string
		if c.cookie != "" {
			hdr = append(hdr, "Cookie: "+c.cookie)
		}
		_, err := tiotest.DialWebSocketErr(t, srv, c.path, hdr...)
		if err == nil || !strings.Contains(err.Error(), c.status) {
			t.Fatalf("%s %q: %v, want %s", c.path, c.cookie, err, c.status)
		}
	}
	tiotest.Eventually(t, "both refusals counted", func() bool {
		return srv.Stats().Closed[channel.ReasonHandshakeRefused] == 2
	})
}
