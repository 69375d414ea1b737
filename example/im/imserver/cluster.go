package imserver

import (
	"bytes"
	"hash/fnv"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// What spans the nodes of a cluster (WithCluster), and how:
//
//   - Room messages and DMs are sends to tio.Group(room) and tio.User(u):
//     the cluster relays them, each node delivers to its own connections.
//   - A room's users are the cluster's roster of the room: a node enters
//     (room, user) for a user's first connection in the room here and
//     exits for the last. Joined and left notices are the changes of that
//     roster, which each node tells its own connections (resyncLocked): a
//     user with tabs on two nodes is in the room once, and leaves it when
//     the last tab anywhere does — or when the node of the last tab dies,
//     once its TTL passes.
//   - History: every node keeps the room messages of the others too
//     (received), in the order of their ids.
//   - Kicks are closes of tio.User(u), relayed; a node that closes a
//     user's connections for another node's kick bans the user too.
//   - Ids carry a tag of the node that numbered them (idGen).

// Message ids: 53 bits, exact in JavaScript. The high 43 are a clock in
// units of 1,024 µs (about a millisecond; 2^43 of them reach the year
// 2255), the low 10 the tag of the node that numbered the message. A node
// takes a new unit for each message: max(the clock, the last unit + 1), so
// that its ids increase and two nodes with different tags never make the
// same id. Past about 1,000 messages a second, a node's units run ahead of
// its clock (and come back when traffic slows). A node also moves its units
// past the ids it receives from other nodes (at most a minute ahead of its
// clock), so a reply is numbered after the message it answers even when
// clocks differ a little.
const (
	tagBits  = 10
	unitBits = 10 // 1,024 µs
	maxAhead = uint64(time.Minute/time.Microsecond) >> unitBits
)

// idGen numbers messages.
type idGen struct {
	mu   sync.Mutex
	last uint64 // the last unit used
	tag  uint64
}

// next returns a new id.
func (g *idGen) next(now time.Time) uint64 {
	u := uint64(now.UnixMicro()) >> unitBits
	g.mu.Lock()
	u = max(u, g.last+1)
	g.last = u
	g.mu.Unlock()
	return u<<tagBits | g.tag
}

// observe moves the units past id's, if it is not too far ahead.
func (g *idGen) observe(id uint64, now time.Time) {
	u := id >> tagBits
	if u > uint64(now.UnixMicro())>>unitBits+maxAhead {
		return
	}
	g.mu.Lock()
	g.last = max(g.last, u)
	g.mu.Unlock()
}

// nodeTag draws a node's tag from its id. Two node ids may draw the same
// tag (one chance in 1,024 for two nodes): a node that receives an id with
// its own tag from another node logs it, and one of them should take
// another name (-node).
func nodeTag(id string) uint64 {
	f := fnv.New32a()
	_, _ = f.Write([]byte(id))
	return uint64(f.Sum32()) & (1<<tagBits - 1)
}

// inRoom reports whether user is in room on any node.
func (h *hub) inRoom(name, user string) bool {
	if h.node != nil {
		return h.node.InRoster(name, user)
	}
	r := h.rooms[name]
	return r != nil && r.members[user] > 0
}

// roomUsers returns the number of users of room name (r here, nil if this
// node keeps no such room) on every node. Called with h.mu held.
func (h *hub) roomUsers(name string, r *room) int {
	switch {
	case h.node != nil:
		return len(h.node.Roster(name))
	case r != nil:
		return len(r.members)
	}
	return 0
}

// resyncLocked brings r.seen to the room's users on every node, tells this
// node's connections in the room (but except) who joined and who left
// since, and returns the users, sorted. Called with h.mu held, after every
// change of the room's members here and for every change on other nodes.
func (h *hub) resyncLocked(r *room, except *channel.Channel) []string {
	var users []string
	if h.node != nil {
		users = h.node.Roster(r.name)
	} else {
		users = sortedKeys(r.members)
	}
	if len(r.members) == 0 {
		r.seen = nil // nobody here to tell
		return users
	}
	old := r.seen
	r.seen = make(map[string]bool, len(users))
	for _, u := range users {
		r.seen[u] = true
		if old != nil && !old[u] {
			h.tellLocal(r.name, packet(memberEvent{Event: "joined", Room: r.name, User: u}), except)
		}
	}
	for u := range old {
		if !r.seen[u] {
			h.tellLocal(r.name, packet(memberEvent{Event: "left", Room: r.name, User: u}), except)
		}
	}
	return users
}

// tellLocal sends p to this node's connections in room but except: an
// event every node makes for its own connections, never relayed.
func (h *hub) tellLocal(room string, p *codec.Packet, except *channel.Channel) {
	var chs []*channel.Channel
	if except != nil {
		chs = h.srv.Channels(tio.Group(room), tio.Exclude(except))
	} else {
		chs = h.srv.Channels(tio.Group(room))
	}
	if len(chs) > 0 {
		_, _ = h.srv.Send(tio.Of(chs...), p) // an IDs target: not relayed
	}
}

// rosterChanged is the node's OnRosterChange: room's users on other nodes
// changed. It runs on the node's goroutines and takes the hub's lock, for
// map lookups and queued sends.
func (h *hub) rosterChanged(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[name]; r != nil && len(r.members) > 0 {
		h.resyncLocked(r, nil)
	}
}

// received is the node's OnReceive: a send or close from another node. It
// keeps room messages in the history and delivers them under the room's
// lock (so that a join here gets each either in its history or live, never
// both, never neither); delivers typing notices to the room's connections
// but the typist's own tabs; bans a kicked user. Everything else the node
// delivers as usual.
func (h *hub) received(m tio.RelayMessage, local tio.Local) bool {
	t := m.Target
	switch {
	case m.Op == tio.RelayClose && t.Kind() == tio.KindUser && m.Reason == channel.ReasonClosedByApp:
		h.ban(t.Key(), time.Now()) // a kick on another node
		return true
	case m.Op != tio.RelaySend || m.Packet.Type != textType:
		return true
	}
	body := m.Packet.Body
	event := gjson.GetBytes(body, "event").Str
	switch {
	case event == "dm" && t.Kind() == tio.KindUser:
		h.observe(gjson.GetBytes(body, "id").Uint())
	case event == "message" && t.Kind() == tio.KindGroup:
		id := gjson.GetBytes(body, "id").Uint()
		h.observe(id)
		h.relayedMessage(t.Key(), id, bytes.Clone(body), local)
		return false
	case event == "typing" && t.Kind() == tio.KindGroup:
		own := h.srv.Channels(tio.User(gjson.GetBytes(body, "user").Str))
		if chs := h.srv.Channels(t, tio.Exclude(own...)); len(chs) > 0 {
			_, _ = h.srv.Send(tio.Of(chs...), m.Packet)
		}
		return false
	}
	return true
}

// observe takes note of another node's message id.
func (h *hub) observe(id uint64) {
	if id&(1<<tagBits-1) == h.ids.tag && h.warned.CompareAndSwap(false, true) {
		h.log.Warn("im: another node numbers messages with this node's tag: ids may collide; give one of them another name (-node)", "tag", h.ids.tag)
	}
	h.ids.observe(id, time.Now())
}

// relayedMessage keeps another node's room message in the room's history
// (the room is made, to keep it, if the server has room for it) and
// delivers it to the room's connections here.
func (h *hub) relayedMessage(name string, id uint64, b []byte, local tio.Local) {
	p := &codec.Packet{Type: textType, Body: b}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil && checkName("room", name, maxRoomName) == nil && (len(h.rooms) < h.lim.MaxRooms || h.evictLocked()) {
		r = &room{name: name, members: make(map[string]int)}
		h.rooms[name] = r
	}
	if r == nil {
		_, _ = local.Send(tio.Group(name), p)
		return
	}
	if len(r.members) == 0 {
		r.idle = time.Now() // kept for its history: the least recently active goes first
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep(id, b, h.lim.History)
	_, _ = local.Send(tio.Group(name), p)
}

// ban keeps user out for Limits.KickBan, pruning the bans that ended.
func (h *hub) ban(user string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, until := range h.bans {
		if now.After(until) {
			delete(h.bans, name)
		}
	}
	h.bans[user] = now.Add(h.lim.KickBan)
}
