package imserver

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec"
)

// hub is the chat's state: users, rooms, sessions. One mutex guards the
// maps and the membership counts (joins, leaves, logins and closes are
// rare next to messages); each room has its own lock for its history, held
// while a message is numbered, stored and queued, so that a room's
// messages reach everyone in the order of their ids. The lock order is
// hub.mu, then room.mu, then the cluster node's own locks (Enter, Exit,
// Roster: map updates and lookups, never the network). Sends only queue
// bytes (a slow peer is closed by its own event loop later; a relayed send
// is queued for NATS), so they may be made under either lock.
type hub struct {
	srv     *tio.Server
	metrics http.Handler
	log     *slog.Logger
	lim     Limits
	admin   string
	beat    time.Duration
	ids     idGen
	node    *cluster.Node // nil: a single server
	warned  atomic.Bool   // a tag collision was logged

	mu    sync.Mutex
	rooms map[string]*room
	users map[string]*user
	bans  map[string]time.Time // kicked users, until when
}

// room is one room: who is in it and its last messages.
type room struct {
	name    string
	members map[string]int // user → their connections in the room, on this node
	idle    time.Time      // when it last became empty here, or (empty) got another node's message
	// seen is the room's users on every node as this node last told its
	// connections in the room (joined and left notices are its changes);
	// nil while the room has no member here.
	seen map[string]bool

	mu      sync.Mutex
	history []stored // oldest first (by id), at most Limits.History
}

// stored is a message event kept in a room's history, encoded once.
type stored struct {
	id uint64
	b  []byte
}

// user is a logged-in user, over all their connections.
type user struct {
	name   string
	conns  int
	rooms  int       // rooms with at least one of their connections
	tokens float64   // message budget (Limits.Rate, Limits.Burst)
	at     time.Time // when tokens was computed
}

// session is one connection's state, stored on its channel.
type session struct {
	// Set before the connection is open (the upgrade hook) or on its
	// event loop (connected), and read afterwards.
	pending *codec.Packet // the answer to a login from the upgrade request, sent once open

	// Guarded by hub.mu.
	user   string
	admin  bool
	rooms  map[string]bool
	closed bool
	typed  time.Time // the last typing notice relayed
}

type sessionKey struct{}

func newHub(c config) *hub {
	h := &hub{
		log: c.logger, lim: c.limits, admin: c.adminToken, beat: c.heartbeat, node: c.node,
		rooms: make(map[string]*room), users: make(map[string]*user), bans: make(map[string]time.Time),
	}
	if c.node != nil {
		h.ids.tag = nodeTag(c.node.ID())
	}
	return h
}

// newSession attaches a fresh session to ch.
func (h *hub) newSession(ch *channel.Channel) *session {
	s := &session{rooms: make(map[string]bool)}
	ch.SetValue(sessionKey{}, s)
	return s
}

// sessionOf returns ch's session.
func sessionOf(ch *channel.Channel) *session {
	s, _ := ch.Value(sessionKey{}).(*session)
	return s
}

// connected runs once a connection's handshake is done (on its loop): a
// binary-protocol connection gets its session, a WebSocket one the answer
// to a login from its upgrade request.
func (h *hub) connected(ch *channel.Channel) {
	s := sessionOf(ch)
	if s == nil {
		h.newSession(ch)
		return
	}
	if p := s.pending; p != nil {
		s.pending = nil
		_ = ch.Send(p)
	}
}

// closed runs when a connection closes (on its loop): its user leaves the
// rooms where this was their last connection.
func (h *hub) closed(ch *channel.Channel, _ channel.Reason, _ error) {
	s := sessionOf(ch)
	if s == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.closed = true
	if s.user != "" {
		for name := range s.rooms {
			if h.leaveLocked(s, name) {
				// ch is still in the room's group (closing): not told.
				h.resyncLocked(h.rooms[name], ch)
			}
		}
		if u := h.users[s.user]; u != nil {
			if u.conns--; u.conns == 0 {
				delete(h.users, s.user)
			}
		}
	}
}

// login logs ch in as name and returns the welcome or error event (with
// ref, the command's).
func (h *hub) login(ch *channel.Channel, s *session, name, token, ref string) *codec.Packet {
	if err := checkName("user", name, maxUserName); err != nil {
		return errPacket(codeBadName, err.Error(), "login", ref)
	}
	admin := false
	if token != "" {
		if h.admin == "" || subtle.ConstantTimeCompare([]byte(token), []byte(h.admin)) != 1 {
			return errPacket(codeBadAdminToken, "the admin token is wrong", "login", ref)
		}
		admin = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case s.closed:
		return nil
	case s.user == name:
		s.admin = s.admin || admin
		return h.welcome(s)
	case s.user != "":
		return errPacket(codeLoggedIn, "this connection is logged in as "+s.user, "login", ref)
	}
	if until, ok := h.bans[name]; ok {
		if time.Now().Before(until) {
			return errPacket(codeBanned, name+" was kicked by an admin; try again later", "login", ref)
		}
		delete(h.bans, name)
	}
	u := h.users[name]
	if u != nil && u.conns >= h.lim.MaxConnsPerUser {
		return errPacket(codeTooManyConns, "too many connections for "+name, "login", ref)
	}
	if err := h.srv.Bind(ch, tio.User(name)); err != nil {
		return nil // closed meanwhile
	}
	if u == nil {
		u = &user{name: name, tokens: float64(h.lim.Burst), at: time.Now()}
		h.users[name] = u
	}
	u.conns++
	s.user, s.admin = name, admin
	return h.welcome(s)
}

func (h *hub) welcome(s *session) *codec.Packet {
	return packet(welcomeEvent{
		Event: "welcome", User: s.user, Admin: s.admin, Heartbeat: (h.beat / 3).Milliseconds(),
		Limits: limits{Text: h.lim.MaxText, Rooms: h.lim.MaxRoomsPerUser, Rate: int(h.lim.Rate), Burst: h.lim.Burst},
	})
}

// join puts ch in room and returns the room's users. It sends ch its
// joined and history events under the room's lock, so that no message of
// the room reaches ch before the history it follows, and tells the room's
// other connections here if the user is new to the room (other nodes learn
// it from the roster).
func (h *hub) join(ch *channel.Channel, s *session, name, ref string) ([]string, *codec.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return nil, nil
	}
	u := h.users[s.user]
	r := h.rooms[name]
	again := s.rooms[name]
	if !again {
		here := r != nil && r.members[s.user] > 0
		if !here && u.rooms >= h.lim.MaxRoomsPerUser {
			return nil, errPacket(codeTooManyRooms, "you are in the most rooms a user may be in; leave one first", "join", ref)
		}
		if !here && !h.inRoom(name, s.user) && h.roomUsers(name, r) >= h.lim.MaxUsersPerRoom {
			return nil, errPacket(codeRoomFull, "room "+name+" is full", "join", ref)
		}
		if r == nil {
			if len(h.rooms) >= h.lim.MaxRooms && !h.evictLocked() {
				return nil, errPacket(codeTooManyRooms, "the server has as many rooms as it keeps, all in use", "join", ref)
			}
			r = &room{name: name, members: make(map[string]int)}
			h.rooms[name] = r
		}
		if err := h.srv.Bind(ch, tio.Group(name)); err != nil {
			return nil, nil // closed meanwhile
		}
		s.rooms[name] = true
		if r.members[s.user]++; r.members[s.user] == 1 {
			u.rooms++
			if h.node != nil {
				h.node.Enter(name, s.user)
			}
		}
	}
	online := h.resyncLocked(r, ch)
	r.mu.Lock()
	_ = ch.Send(packet(memberEvent{Event: "joined", Room: name, User: s.user}))
	_ = ch.Send(historyPacket(name, r.history))
	r.mu.Unlock()
	return online, nil
}

// leaveLocked takes s's connection out of room name and reports whether it
// was its user's last one there. Called with h.mu held.
func (h *hub) leaveLocked(s *session, name string) (last bool) {
	if !s.rooms[name] {
		return false
	}
	delete(s.rooms, name)
	r := h.rooms[name]
	if r == nil {
		return false
	}
	if r.members[s.user]--; r.members[s.user] > 0 {
		return false
	}
	delete(r.members, s.user)
	if h.node != nil {
		h.node.Exit(name, s.user)
	}
	if u := h.users[s.user]; u != nil {
		u.rooms--
	}
	if len(r.members) == 0 {
		r.idle = time.Now()
	}
	return true
}

// evictLocked forgets the empty room idle longest, and reports whether
// there was one.
func (h *hub) evictLocked() bool {
	var victim *room
	for _, r := range h.rooms {
		if len(r.members) == 0 && (victim == nil || r.idle.Before(victim.idle)) {
			victim = r
		}
	}
	if victim == nil {
		return false
	}
	delete(h.rooms, victim.name)
	return true
}

// allow takes one message from the user's budget.
func (h *hub) allowLocked(u *user, now time.Time) bool {
	u.tokens = min(float64(h.lim.Burst), u.tokens+now.Sub(u.at).Seconds()*h.lim.Rate)
	u.at = now
	if u.tokens < 1 {
		return false
	}
	u.tokens--
	return true
}

// post numbers a room message, keeps it in the room's history and queues
// it for the room's connections but ch (on every node).
func (h *hub) post(ch *channel.Channel, r *room, from, text string) (id uint64, ts int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	id, ts = h.ids.next(now), now.UnixMilli()
	b := encode(messageEvent{Event: "message", Room: r.name, From: from, Text: text, ID: id, TS: ts})
	r.keep(id, b, h.lim.History)
	_, _ = h.srv.Send(tio.Group(r.name), &codec.Packet{Type: textType, Body: b}, tio.Exclude(ch))
	return id, ts
}

// keep puts a message into the history in the order of ids (another
// node's may be older than the last one here), keeping the newest max.
// Called with r.mu held.
func (r *room) keep(id uint64, b []byte, max int) {
	i := len(r.history)
	for i > 0 && r.history[i-1].id > id {
		i--
	}
	if i > 0 && r.history[i-1].id == id {
		return // had it
	}
	if len(r.history) >= max {
		if i == 0 {
			return // older than everything kept
		}
		r.history = slices.Delete(r.history, 0, 1)
		i--
	}
	r.history = slices.Insert(r.history, i, stored{id, b})
}

// historyIDs returns the ids of room's history.
func (h *hub) historyIDs(name string) []uint64 {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]uint64, len(r.history))
	for i, m := range r.history {
		ids[i] = m.id
	}
	return ids
}

// online returns the users of room on every node, sorted.
func (h *hub) online(name string) []string {
	if h.node != nil {
		return h.node.Roster(name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[name]; r != nil {
		return sortedKeys(r.members)
	}
	return []string{}
}

func (h *hub) roomCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// errPacket builds an error event.
func errPacket(code, text, cmd, ref string) *codec.Packet {
	return packet(errorEvent{Event: "error", Code: code, Text: text, Cmd: cmd, Ref: ref})
}
