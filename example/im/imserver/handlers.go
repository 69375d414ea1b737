package imserver

import (
	"fmt"
	"slices"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

const textType = websocket.TypeText

// routes registers the commands. Ping only queues a reply, so it runs on
// the event loop; the others decode JSON and take the hub's locks, so they
// run on the worker pool (in order for each connection).
func (h *hub) routes(m *handler.JSONMux) {
	m.Handle("ping", handler.InlineFunc(h.ping))
	m.Handle("login", h.cmd(h.doLogin, false))
	m.Handle("join", h.cmd(h.doJoin, true))
	m.Handle("leave", h.cmd(h.doLeave, true))
	m.Handle("say", h.cmd(h.doSay, true))
	m.Handle("dm", h.cmd(h.doDM, true))
	m.Handle("typing", h.cmd(h.doTyping, true))
	m.Handle("who", h.cmd(h.doWho, true))
	m.Handle("rooms", h.cmd(h.doRooms, true))
	m.Handle("kick", h.cmd(h.doKick, true))
	m.NotFound(handler.InlineFunc(h.unknown))
	m.Malformed(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(errPacket(codeBadJSON, "a command is one JSON object per message", "", ""))
	}))
}

// request is one decoded command and its connection.
type request struct {
	ch   *channel.Channel
	s    *session
	c    command
	user string // the session's user when the command was decoded
}

// reply sends ch an event.
func (r *request) reply(p *codec.Packet) { _ = r.ch.Send(p) }

// fail sends ch an error event about this command.
func (r *request) fail(code, format string, args ...any) {
	r.reply(errPacket(code, fmt.Sprintf(format, args...), r.c.Cmd, r.c.Ref))
}

// cmd adapts a command handler: it decodes the body and checks the common
// fields (ref; being logged in if auth). It runs on the worker pool.
func (h *hub) cmd(f func(*request), auth bool) handler.Handler {
	return handler.HandlerFunc(func(ch *channel.Channel, p *codec.Packet) {
		s := sessionOf(ch)
		if s == nil {
			return // not a chat connection (cannot happen: every connection gets a session)
		}
		c, err := decode(p.Body)
		r := &request{ch: ch, s: s, c: c}
		if err != nil {
			r.c.Ref = "" // not trusted
			r.fail(codeBadRequest, "%s", err)
			return
		}
		if len(c.Ref) > maxRef {
			r.c.Ref = ""
			r.fail(codeBadRequest, "ref is at most %d bytes", maxRef)
			return
		}
		h.mu.Lock()
		r.user = s.user
		h.mu.Unlock()
		if auth && r.user == "" {
			r.fail(codeNotLoggedIn, "log in first: {\"cmd\":\"login\",\"user\":\"NAME\"}")
			return
		}
		f(r)
	})
}

func (h *hub) ping(ch *channel.Channel, p *codec.Packet) {
	ref := gjson.GetBytes(p.Body, "ref")
	pong := pongEvent{Event: "pong", TS: time.Now().UnixMilli()}
	if ref.Type == gjson.String && len(ref.Str) <= maxRef {
		pong.Ref = ref.Str
	}
	_ = ch.Send(packet(pong))
}

// unknown answers valid JSON that names no command.
func (h *hub) unknown(ch *channel.Channel, p *codec.Packet) {
	if !gjson.ParseBytes(p.Body).IsObject() {
		_ = ch.Send(errPacket(codeBadRequest, "a command is a JSON object", "", ""))
		return
	}
	cmd := gjson.GetBytes(p.Body, "cmd")
	switch {
	case !cmd.Exists():
		_ = ch.Send(errPacket(codeBadRequest, `a command needs a "cmd" field`, "", ""))
	case cmd.Type != gjson.String:
		_ = ch.Send(errPacket(codeBadRequest, `"cmd" must be a string`, "", ""))
	default:
		_ = ch.Send(errPacket(codeUnknownCmd, fmt.Sprintf("unknown command %q", clip(cmd.Str, 32)), "", ""))
	}
}

// notJSON answers packets of other types than text.
func (h *hub) notJSON(ch *channel.Channel, p *codec.Packet) {
	_ = ch.Send(errPacket(codeBadRequest, fmt.Sprintf("packets of type %#x are not part of the chat protocol: send JSON text", uint16(p.Type)), "", ""))
}

func (h *hub) doLogin(r *request) {
	if r.c.User == "" {
		r.fail(codeBadRequest, "user is required")
		return
	}
	if p := h.login(r.ch, r.s, r.c.User, r.c.Token, r.c.Ref); p != nil {
		r.reply(p)
	}
}

func (h *hub) doJoin(r *request) {
	if err := checkName("room", r.c.Room, maxRoomName); err != nil {
		r.fail(codeBadName, "%s", err)
		return
	}
	online, errp := h.join(r.ch, r.s, r.c.Room, r.c.Ref)
	if errp != nil {
		r.reply(errp)
	}
	if online == nil {
		return
	}
	r.reply(packet(onlineEvent{Event: "online", Room: r.c.Room, Users: online}))
}

func (h *hub) doLeave(r *request) {
	if err := checkName("room", r.c.Room, maxRoomName); err != nil {
		r.fail(codeBadName, "%s", err)
		return
	}
	h.mu.Lock()
	in := r.s.rooms[r.c.Room]
	if in {
		last := h.leaveLocked(r.s, r.c.Room)
		_, _ = h.srv.Unbind(r.ch, tio.Group(r.c.Room))
		if last {
			// The room's other connections here are told if the user is
			// in it nowhere else; other nodes learn it from the roster.
			h.resyncLocked(h.rooms[r.c.Room], nil)
		}
	}
	h.mu.Unlock()
	if !in {
		r.fail(codeNotInRoom, "you are not in room %s", r.c.Room)
		return
	}
	r.reply(packet(memberEvent{Event: "left", Room: r.c.Room, User: r.user}))
}

// message checks a say or dm and takes one message from the user's budget;
// it returns the room for a say.
func (h *hub) message(r *request, name string) (*room, bool) {
	if code, err := checkText(r.c.Text, h.lim.MaxText); err != nil {
		r.fail(code, "%s", err)
		return nil, false
	}
	h.mu.Lock()
	var rm *room
	in := name == "" || r.s.rooms[name]
	if in && name != "" {
		rm = h.rooms[name]
	}
	ok := false
	if u := h.users[r.user]; in && u != nil {
		ok = h.allowLocked(u, time.Now())
	}
	h.mu.Unlock()
	switch {
	case !in:
		r.fail(codeNotInRoom, "join room %s first", name)
	case !ok:
		r.fail(codeRateLimited, "slow down: at most %g messages a second (bursts of %d)", h.lim.Rate, h.lim.Burst)
	case name != "" && rm == nil:
		return nil, false // cannot happen: a room with a member is kept
	default:
		return rm, true
	}
	return nil, false
}

func (h *hub) doSay(r *request) {
	if err := checkName("room", r.c.Room, maxRoomName); err != nil {
		r.fail(codeBadName, "%s", err)
		return
	}
	rm, ok := h.message(r, r.c.Room)
	if !ok {
		return
	}
	id, ts := h.post(r.ch, rm, r.user, r.c.Text)
	r.reply(packet(ackEvent{Event: "ack", Ref: r.c.Ref, Room: r.c.Room, ID: id, TS: ts}))
}

func (h *hub) doDM(r *request) {
	if err := checkName("to", r.c.To, maxUserName); err != nil {
		r.fail(codeBadName, "%s", err)
		return
	}
	if _, ok := h.message(r, ""); !ok {
		return
	}
	if h.srv.Count(tio.User(r.c.To)) == 0 && (h.node == nil || !h.node.Online(r.c.To)) {
		r.fail(codeOffline, "%s is not online", r.c.To)
		return
	}
	now := time.Now()
	id, ts := h.ids.next(now), now.UnixMilli()
	p := packet(messageEvent{Event: "dm", From: r.user, To: r.c.To, Text: r.c.Text, ID: id, TS: ts})
	if r.c.To != r.user {
		_, _ = h.srv.Send(tio.User(r.c.To), p)
	}
	_, _ = h.srv.Send(tio.User(r.user), p, tio.Exclude(r.ch)) // the sender's other tabs
	r.reply(packet(ackEvent{Event: "ack", Ref: r.c.Ref, To: r.c.To, ID: id, TS: ts}))
}

// doTyping relays a typing notice to a room or a user, at most one a
// second per connection; extra notices are dropped without an answer.
func (h *hub) doTyping(r *request) {
	room, to := r.c.Room, r.c.To
	switch {
	case room == "" && to == "":
		r.fail(codeBadRequest, "typing needs a room or a to")
		return
	case room != "":
		if err := checkName("room", room, maxRoomName); err != nil {
			r.fail(codeBadName, "%s", err)
			return
		}
	default:
		if err := checkName("to", to, maxUserName); err != nil {
			r.fail(codeBadName, "%s", err)
			return
		}
	}
	now := time.Now()
	h.mu.Lock()
	in := room == "" || r.s.rooms[room]
	relay := in && now.Sub(r.s.typed) >= time.Second
	if relay {
		r.s.typed = now
	}
	h.mu.Unlock()
	if !in {
		r.fail(codeNotInRoom, "join room %s first", room)
		return
	}
	if !relay {
		return
	}
	own := tio.Exclude(h.srv.Channels(tio.User(r.user))...) // the typist's own tabs
	if room != "" {
		_, _ = h.srv.Send(tio.Group(room), packet(memberEvent{Event: "typing", Room: room, User: r.user}), own)
	} else {
		_, _ = h.srv.Send(tio.User(to), packet(memberEvent{Event: "typing", User: r.user, To: to}), own)
	}
}

func (h *hub) doWho(r *request) {
	if err := checkName("room", r.c.Room, maxRoomName); err != nil {
		r.fail(codeBadName, "%s", err)
		return
	}
	r.reply(packet(onlineEvent{Event: "online", Room: r.c.Room, Users: h.online(r.c.Room)}))
}

// doRooms lists the busiest rooms, at most 100.
func (h *hub) doRooms(r *request) {
	h.mu.Lock()
	list := make([]roomInfo, 0, len(h.rooms))
	for _, rm := range h.rooms {
		list = append(list, roomInfo{Room: rm.name, Users: h.roomUsers(rm.name, rm)})
	}
	h.mu.Unlock()
	slices.SortFunc(list, func(a, b roomInfo) int {
		if a.Users != b.Users {
			return b.Users - a.Users
		}
		if a.Room < b.Room {
			return -1
		}
		return 1
	})
	r.reply(packet(roomsEvent{Event: "rooms", Rooms: list[:min(len(list), 100)]}))
}

// doKick closes every connection of a user, with words the page shows, and
// keeps them out for Limits.KickBan.
func (h *hub) doKick(r *request) {
	h.mu.Lock()
	admin := r.s.admin
	h.mu.Unlock()
	if !admin {
		r.fail(codeForbidden, "only an admin may kick")
		return
	}
	if err := checkName("user", r.c.User, maxUserName); err != nil {
		r.fail(codeBadName, "%s", err)
		return
	}
	text := "kicked by an admin"
	if reason := r.c.Reason; reason != "" {
		if code, err := checkText(reason, maxReason); err != nil {
			r.fail(code, "reason: %s", err)
			return
		}
		text += ": " + reason
	}
	h.ban(r.c.User, time.Now())
	remote := 0 // the user's connections on other nodes, as presence knows them
	if h.node != nil {
		remote = max(h.node.Presence(r.c.User).Conns-h.srv.Count(tio.User(r.c.User)), 0)
	}
	// The close is relayed: every node closes the user's connections with
	// these words, and bans the user too.
	n, err := h.srv.Close(tio.User(r.c.User), channel.ReasonClosedByApp, tio.CloseText(text))
	if err != nil {
		h.log.Warn("im: kick not relayed to other nodes", "user", r.c.User, "err", err)
	}
	h.log.Info("im: kick", "user", r.c.User, "by", r.user, "conns", n, "elsewhere", remote, "reason", r.c.Reason)
	r.reply(packet(kickedEvent{Event: "kicked", User: r.c.User, Conns: n + remote}))
}
