package imcli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// Options configure Run.
type Options struct {
	// Addr is the chat server's address, host:port (its binary protocol).
	Addr string
	// User is the name to log in as; Token, if set, the admin token.
	User, Token string
	// Rooms are joined at the start (default: lobby); the first is the
	// current room.
	Rooms []string
	// Heartbeat is how long the connection may be idle before the client
	// sends a heartbeat (default 10 s); a server silent for three of them
	// is taken for dead, and dialled again.
	Heartbeat time.Duration
	// Logger receives package client's logs (default: none).
	Logger *slog.Logger
}

// ErrLogin is wrapped by Run's error when the server refuses the login (a
// bad name, a ban after a kick, too many connections).
var ErrLogin = errors.New("imcli: login refused")

// Run is the terminal chat: it logs in over tio's binary protocol, joins
// the rooms, prints what happens to out and sends what is typed on in,
// until in ends, the user types /quit, or ctx ends. It reconnects by
// itself, with backoff and jitter, and logs in and rejoins each time;
// lines typed while disconnected wait (up to 64) and go out after.
func Run(ctx context.Context, o Options, in io.Reader, out io.Writer) error {
	if o.Addr == "" || o.User == "" {
		return errors.New("imcli: need an address and a user")
	}
	rooms := o.Rooms
	if len(rooms) == 0 {
		rooms = []string{"lobby"}
	}
	beat := cmp.Or(o.Heartbeat, 10*time.Second)
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	c := newChat(o.User, o.Token, rooms, out)
	fatal := make(chan error, 1)
	states := make(chan string, 16)

	// Events are printed on the worker pool, in order: a terminal that
	// blocks holds no event loop.
	mux := handler.NewMux()
	mux.HandleFunc(websocket.TypeText, func(_ *channel.Channel, p *codec.Packet) {
		if e, ok := c.event(p.Body); ok && e.Event == "error" && e.Cmd == "login" {
			select {
			case fatal <- fmt.Errorf("%w: %s: %s", ErrLogin, clean(e.Code), clean(e.Text)):
			default:
			}
		}
	})
	cl, err := client.New(mux, client.WithLogger(logger))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = cl.Shutdown(sctx)
	}()

	var conn *client.Conn
	c.send = func(v any) error {
		p, err := websocket.JSON(v)
		if err != nil {
			return err
		}
		return conn.Send(p)
	}
	conn, err = cl.Connect("tio://"+o.Addr,
		client.WithReconnect(client.Reconnect{Initial: 500 * time.Millisecond, Max: 10 * time.Second}),
		client.WithHeartbeat(beat, 3*beat),
		client.WithQueue(64, 64<<10),
		// Each connection logs in and rejoins before the lines queued
		// while it was down go out.
		client.WithOnConnected(func(ch *channel.Channel, again bool) {
			for _, cmd := range c.hello() {
				if p, err := websocket.JSON(cmd); err == nil {
					_ = ch.Send(p)
				}
			}
		}),
		// On an event loop: hand the news to Run's goroutine.
		client.WithOnStateChange(func(_ *client.Conn, s client.State, err error) {
			var msg string
			switch s {
			case client.StateConnected:
				msg = "* connected to " + o.Addr
			case client.StateReconnecting:
				msg = "* connection lost; reconnecting…"
				if err != nil {
					msg = "* connection lost (" + err.Error() + "); reconnecting…"
				}
			default:
				return
			}
			select {
			case states <- msg:
			default:
			}
		}),
	)
	if err != nil {
		return err
	}
	defer conn.Close()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	c.printf("* %s: connecting to %s…\n", o.User, o.Addr)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-fatal:
			return err
		case msg := <-states:
			c.printf("%s\n", msg)
		case l, ok := <-lines:
			if !ok || c.line(l) {
				return nil
			}
		}
	}
}
