// Package imcli is the terminal client of example/im: it speaks the chat's
// JSON protocol (docs/im-protocol.md) over tio's binary protocol, with
// package client underneath (reconnects with backoff and jitter,
// heartbeats). Run runs it on any reader and writer, so that tests run it
// in-process; example/im/cli is the command.
package imcli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// chat is the terminal's side of the conversation, apart from the
// connection: it turns typed lines into commands and events into lines.
type chat struct {
	user, token string
	send        func(v any) error // sends a command (queued while disconnected)

	mu      sync.Mutex // guards what follows, and writes to out
	out     io.Writer
	rooms   []string          // joined, in the order joined
	current string            // where plain lines go
	last    map[string]uint64 // the last message id printed, by room
	now     func() time.Time
}

func newChat(user, token string, rooms []string, out io.Writer) *chat {
	c := &chat{user: user, token: token, out: out, last: make(map[string]uint64), now: time.Now}
	for _, r := range rooms {
		if r != "" && !slices.Contains(c.rooms, r) {
			c.rooms = append(c.rooms, r)
		}
	}
	if len(c.rooms) > 0 {
		c.current = c.rooms[0]
	}
	return c
}

// hello is what a fresh connection sends: the login, then a join for each
// room this terminal is in (again, after a reconnect).
func (c *chat) hello() []any {
	login := map[string]string{"cmd": "login", "user": c.user}
	if c.token != "" {
		login["token"] = c.token
	}
	cmds := []any{login}
	c.mu.Lock()
	for _, r := range c.rooms {
		cmds = append(cmds, joinCmd(r))
	}
	c.mu.Unlock()
	return cmds
}

const help = `commands:
  TEXT                 say TEXT in the current room
  /join ROOM           join ROOM and make it the current room
  /room ROOM           make ROOM (joined already) the current room
  /leave [ROOM]        leave ROOM (default: the current room)
  /dm USER TEXT        send USER a direct message (also /msg)
  /who [ROOM]          who is in ROOM
  /rooms               the busiest rooms
  /kick USER [REASON]  close every connection of USER (admins)
  /help                this
  /quit                leave`

// line handles a typed line; it reports whether the user quits.
func (c *chat) line(s string) (quit bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	if !strings.HasPrefix(s, "/") {
		c.mu.Lock()
		room := c.current
		c.mu.Unlock()
		if room == "" {
			c.printf("! join a room first: /join ROOM\n")
			return false
		}
		c.do(map[string]string{"cmd": "say", "room": room, "text": s})
		return false
	}
	cmd, rest, _ := strings.Cut(s[1:], " ")
	rest = strings.TrimSpace(rest)
	arg, tail, _ := strings.Cut(rest, " ")
	tail = strings.TrimSpace(tail)
	switch cmd {
	case "quit", "exit", "q":
		return true
	case "help", "h", "?":
		c.printf("%s\n", help)
	case "join", "j":
		if arg == "" {
			c.printf("! /join ROOM\n")
			return false
		}
		c.mu.Lock()
		if !slices.Contains(c.rooms, arg) {
			c.rooms = append(c.rooms, arg)
		}
		c.current = arg
		c.mu.Unlock()
		c.do(joinCmd(arg))
	case "room":
		c.mu.Lock()
		ok := slices.Contains(c.rooms, arg)
		if ok {
			c.current = arg
		}
		c.mu.Unlock()
		if ok {
			c.printf("* now in #%s\n", arg)
		} else {
			c.printf("! not in #%s: /join %s\n", arg, arg)
		}
	case "leave", "part":
		c.mu.Lock()
		if arg == "" {
			arg = c.current
		}
		c.mu.Unlock()
		if arg == "" {
			c.printf("! /leave ROOM\n")
			return false
		}
		c.do(map[string]string{"cmd": "leave", "room": arg})
	case "dm", "msg":
		if arg == "" || tail == "" {
			c.printf("! /dm USER TEXT\n")
			return false
		}
		c.do(map[string]string{"cmd": "dm", "to": arg, "text": tail})
	case "who":
		c.mu.Lock()
		if arg == "" {
			arg = c.current
		}
		c.mu.Unlock()
		c.do(map[string]string{"cmd": "who", "room": arg})
	case "rooms":
		c.do(map[string]string{"cmd": "rooms"})
	case "kick":
		if arg == "" {
			c.printf("! /kick USER [REASON]\n")
			return false
		}
		c.do(map[string]string{"cmd": "kick", "user": arg, "reason": tail})
	default:
		c.printf("! unknown command /%s (/help lists them)\n", clean(cmd))
	}
	return false
}

// joinCmd joins room; an error about it names the room in its ref.
func joinCmd(room string) map[string]string {
	return map[string]string{"cmd": "join", "room": room, "ref": "join:" + room}
}

func (c *chat) do(cmd map[string]string) {
	if err := c.send(cmd); err != nil {
		c.printf("! not sent: %v\n", err)
	}
}

// event is one server event, as the terminal receives it.
type event struct {
	Event    string   `json:"event"`
	Room     string   `json:"room"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	User     string   `json:"user"`
	Users    []string `json:"users"`
	Text     string   `json:"text"`
	Code     string   `json:"code"`
	Cmd      string   `json:"cmd"`
	Ref      string   `json:"ref"`
	ID       uint64   `json:"id"`
	TS       int64    `json:"ts"`
	Admin    bool     `json:"admin"`
	Conns    int      `json:"conns"`
	Messages []event  `json:"messages"`
	Rooms    []struct {
		Room  string `json:"room"`
		Users int    `json:"users"`
	} `json:"rooms"`
}

// event prints what an event says, and returns it.
func (c *chat) event(body []byte) (event, bool) {
	var e event
	if err := json.Unmarshal(body, &e); err != nil {
		c.printf("! the server sent something that is not JSON (%d bytes)\n", len(body))
		return e, false
	}
	c.show(e)
	return e, true
}

// show prints an event.
func (c *chat) show(e event) {
	switch e.Event {
	case "welcome":
		admin := ""
		if e.Admin {
			admin = " (admin)"
		}
		c.printf("* logged in as %s%s; /help for commands\n", clean(e.User), admin)
	case "joined":
		if e.User == c.user {
			return // the history and the online list follow
		}
		c.printf("* %s joined #%s\n", clean(e.User), clean(e.Room))
	case "left":
		if e.User == c.user {
			c.mu.Lock()
			c.rooms = slices.DeleteFunc(c.rooms, func(r string) bool { return r == e.Room })
			if c.current == e.Room {
				c.current = ""
				if len(c.rooms) > 0 {
					c.current = c.rooms[0]
				}
			}
			now := c.current
			c.mu.Unlock()
			if now != "" {
				c.printf("* you left #%s; now in #%s\n", clean(e.Room), now)
			} else {
				c.printf("* you left #%s\n", clean(e.Room))
			}
			return
		}
		c.printf("* %s left #%s\n", clean(e.User), clean(e.Room))
	case "history":
		for _, m := range e.Messages {
			c.message(m)
		}
	case "message":
		c.message(e)
	case "dm":
		arrow := fmt.Sprintf("%s → %s", clean(e.From), clean(e.To))
		c.printf("%s @%s %s\n", c.stamp(e.TS), arrow, indent(clean(e.Text)))
	case "online":
		users := make([]string, len(e.Users))
		for i, u := range e.Users {
			users[i] = clean(u)
		}
		c.printf("* in #%s: %s\n", clean(e.Room), strings.Join(users, ", "))
	case "rooms":
		parts := make([]string, len(e.Rooms))
		for i, r := range e.Rooms {
			parts[i] = fmt.Sprintf("#%s (%d)", clean(r.Room), r.Users)
		}
		c.printf("* rooms: %s\n", strings.Join(parts, ", "))
	case "kicked":
		c.printf("* kicked %s (%d connections)\n", clean(e.User), e.Conns)
	case "error":
		if room, ok := strings.CutPrefix(e.Ref, "join:"); ok && e.Cmd == "join" {
			c.mu.Lock()
			c.rooms = slices.DeleteFunc(c.rooms, func(r string) bool { return r == room })
			if c.current == room {
				c.current = ""
				if len(c.rooms) > 0 {
					c.current = c.rooms[0]
				}
			}
			c.mu.Unlock()
		}
		c.printf("! %s: %s\n", clean(e.Code), clean(e.Text))
	case "ack", "pong", "typing":
	}
}

// message prints a room message once: a reconnect's history repeats those
// printed already (ids increase, see docs/im-protocol.md).
func (c *chat) message(m event) {
	c.mu.Lock()
	if m.ID <= c.last[m.Room] {
		c.mu.Unlock()
		return
	}
	c.last[m.Room] = m.ID
	c.mu.Unlock()
	c.printf("%s #%s <%s> %s\n", c.stamp(m.TS), clean(m.Room), clean(m.From), indent(clean(m.Text)))
}

func (c *chat) stamp(ms int64) string {
	if ms == 0 {
		return "--:--"
	}
	return time.UnixMilli(ms).Format("15:04")
}

// printf writes a line to the terminal.
func (c *chat) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}

// clean makes text from the network safe for a terminal: control
// characters (escape sequences among them) are shown as '?'. The server
// refuses them already; a terminal does not rely on that.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return '?'
	}, s)
}

// indent continues a multi-line text under its first line.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n      ") }
