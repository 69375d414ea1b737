// Package registry is the registry of a server's bindings: which channels belong
// to which user, group, token, business id and IP, with queries and the
// member snapshots that fan-out sends iterate over.
//
// A channel may be bound to one user (a user may have many channels: a phone
// and a browser), to any number of groups, to one token (a token may have
// many channels) and to one business id (a business id has exactly one
// channel: binding it to another channel moves it). Every open channel can
// also be found by its remote IP, automatically. Closing a channel (Detach)
// removes it from every index; indexes delete the keys they no longer use.
//
// Memory: an unbound channel costs one pointer in the table of attached
// channels (indexed by slot, see channel.Slot) and nothing else until the
// first query by IP, which builds the index by IP (one entry per channel
// from then on). A record of a channel's bindings is allocated on its first
// bind and freed when it has none left.
//
// Sends read member lists as snapshots: slices built on first use after a
// change and shared, read-only, by every fan-out until the next change, so a
// send holds no lock while it delivers. The root package tio exposes all of
// this on *tio.Server, addressed by tio.Target.
package registry

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tiogo/tio/channel"
)

// Errors returned by the bind methods.
var (
	// ErrEmptyKey: a user id, group, token or business id may not be empty.
	ErrEmptyKey = errors.New("group: empty key")
	// ErrNotOpen: the channel is closed (or was never opened on this
	// registry's server), so binding it would outlive it.
	ErrNotOpen = errors.New("group: channel not open")
)

// Kind is a kind of binding.
type Kind uint8

// Kinds of binding. IP is not one: it is indexed automatically.
const (
	KindUser  Kind = iota + 1 // a user id: one per channel, many channels per user
	KindGroup                 // a group: many per channel, many channels per group
	KindToken                 // a token: one per channel, many channels per token
	KindBsID                  // a business id: one per channel, one channel per id
)

// String returns the kind's name: "user", "group", "token" or "bsid".
func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindGroup:
		return "group"
	case KindToken:
		return "token"
	case KindBsID:
		return "bsid"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Listener receives binding events, like t-io's GroupListener. The hooks run
// on the goroutine that bound or unbound (for Detach, the event loop that
// closed the channel), after the registry's locks are released, so they may
// call back into the registry; they must not block. A nil hook costs nothing.
type Listener struct {
	// OnBind runs after ch was bound to key.
	OnBind func(ch *channel.Channel, k Kind, key string)
	// OnUnbind runs after ch was unbound from key: by an unbind, by a bind
	// that replaced the binding (a channel's new user id, a business id
	// moved to another channel), or because ch closed.
	OnUnbind func(ch *channel.Channel, k Kind, key string)
}

// rec is what one channel is bound to (its back-references). The IP is not
// recorded: it is the channel's remote address. rec's fields are guarded by
// the lock of the channel's record shard.
//
// bsID is a hint: another channel may have taken the business id since (a
// move does not touch the old holder's record); the bsIDs index is the
// truth, and a hint it contradicts is stale.
type rec struct {
	user, token, bsID string
	groups            map[string]struct{}
}

func (r *rec) field(k Kind) *string {
	switch k {
	case KindUser:
		return &r.user
	case KindToken:
		return &r.token
	}
	return &r.bsID
}

func (r *rec) empty() bool {
	return r.user == "" && r.token == "" && r.bsID == "" && len(r.groups) == 0
}

const nRecShards = 64

// recShard holds the records of the channels whose id falls in it. Its lock
// also orders everything that binds, unbinds or detaches one channel, so a
// bind racing with the channel's close either happens before the close
// (and is undone by it) or fails with ErrNotOpen.
type recShard struct {
	mu sync.Mutex
	m  map[uint64]*rec
	_  [48]byte
}

// Registry indexes the channels of one server. Its methods are safe for
// concurrent use.
type Registry struct {
	l      Listener
	hooked bool

	users  index[string]
	groups index[string]
	tokens index[string]
	bsIDs  unique
	tab    table // every attached channel, by slot

	// ips indexes the channels by IP. It is built on the first query by
	// IP and kept from then on: until then a channel costs nothing in it.
	ips   index[netip.Addr]
	ipsOn atomic.Bool
	ipsMu sync.Mutex // serializes building ips
	recs  [nRecShards]recShard

	gen atomic.Uint64 // bumped after every Attach and Detach
	all atomic.Pointer[allSnap]
}

type allSnap struct {
	gen  uint64
	list []*channel.Channel
}

// New returns an empty registry that reports binding events to l (the zero
// Listener reports nothing).
func New(l Listener) *Registry {
	r := &Registry{l: l, hooked: l.OnBind != nil || l.OnUnbind != nil}
	r.users.init()
	r.groups.init()
	r.tokens.init()
	r.ips.init()
	r.bsIDs.init()
	for i := range r.recs {
		r.recs[i].m = make(map[uint64]*rec)
	}
	return r
}

func (r *Registry) recShard(ch *channel.Channel) *recShard {
	return &r.recs[ch.ID()%nRecShards]
}

func ipOf(ch *channel.Channel) netip.Addr { return ch.RemoteAddr().Addr() }

// Attach registers a channel that was just accepted. Call it once per
// channel, before any bind. Its slot (channel.Slot) must be unique among
// the attached channels.
func (r *Registry) Attach(ch *channel.Channel) {
	r.tab.put(ch)
	if r.ipsOn.Load() {
		r.ips.add(ipOf(ch), ch)
	}
	r.gen.Add(1)
}

// ipIndex returns the index by IP, building it on first use.
//
// Attach stores a channel in tab and then looks at ipsOn; ipIndex sets
// ipsOn and then scans tab: one of them sees the other, so no channel is
// missed. A channel detached during the scan is removed by Detach (if it
// saw ipsOn) or by the scan's recheck (if it did not).
func (r *Registry) ipIndex() *index[netip.Addr] {
	if r.ipsOn.Load() {
		return &r.ips
	}
	r.ipsMu.Lock()
	defer r.ipsMu.Unlock()
	if !r.ipsOn.Load() {
		r.ipsOn.Store(true)
		r.tab.each(func(ch *channel.Channel) bool {
			r.ips.add(ipOf(ch), ch)
			if !r.tab.contains(ch) {
				r.ips.remove(ipOf(ch), ch)
			}
			return true
		})
	}
	return &r.ips
}

// MoveIP re-indexes ch, whose remote address changed from old (a trusted
// proxy's PROXY header named the client).
func (r *Registry) MoveIP(ch *channel.Channel, old netip.Addr) {
	rs := r.recShard(ch)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r.ipsMu.Lock() // not while the index is being built
	defer r.ipsMu.Unlock()
	if r.ipsOn.Load() && r.tab.contains(ch) {
		r.ips.remove(old.Unmap(), ch)
		r.ips.add(ipOf(ch), ch)
	}
}

// Channel returns the attached channel with the given id, or nil.
func (r *Registry) Channel(id uint64) *channel.Channel { return r.tab.get(id) }

// Each calls f for every attached channel until f returns false. It holds
// no lock: channels attached or detached meanwhile may or may not be seen.
func (r *Registry) Each(f func(*channel.Channel) bool) { r.tab.each(f) }

// Len returns the number of attached channels.
func (r *Registry) Len() int { return r.tab.len() }

// Detach removes a closed channel from every index and reports an unbind
// event for each binding it had.
func (r *Registry) Detach(ch *channel.Channel) {
	r.unbindAll(ch, true)
}

// attached reports whether ch is open in this registry. Call it with ch's
// record shard locked.
func (r *Registry) attached(ch *channel.Channel) bool {
	return r.tab.contains(ch)
}

// event is a binding event waiting to be reported once the locks are free.
type event struct {
	ch   *channel.Channel
	key  string
	kind Kind
	bind bool
}

func (r *Registry) note(evs []event, ch *channel.Channel, k Kind, key string, bind bool) []event {
	if !r.hooked {
		return evs
	}
	return append(evs, event{ch: ch, key: key, kind: k, bind: bind})
}

func (r *Registry) fire(evs []event) {
	for _, e := range evs {
		if e.bind {
			if f := r.l.OnBind; f != nil {
				f(e.ch, e.kind, e.key)
			}
		} else if f := r.l.OnUnbind; f != nil {
			f(e.ch, e.kind, e.key)
		}
	}
}

// Bind binds ch to key of kind k (see BindUser, BindGroup, BindToken and
// BindBsID).
func (r *Registry) Bind(ch *channel.Channel, k Kind, key string) error {
	if k == KindGroup {
		return r.BindGroup(ch, key)
	}
	return r.bindOne(ch, k, key)
}

// Unbind unbinds ch from key of kind k, or, with an empty key, from
// whatever it is bound to of that kind (every group, for KindGroup). It
// reports whether ch was bound to anything it unbound.
func (r *Registry) Unbind(ch *channel.Channel, k Kind, key string) bool {
	if k == KindGroup {
		if key != "" {
			return r.UnbindGroup(ch, key)
		}
		any := false
		for _, g := range r.GroupsOf(ch) {
			any = r.UnbindGroup(ch, g) || any
		}
		return any
	}
	return r.unbindOne(ch, k, key) != ""
}

// BindUser binds ch to user id, replacing the user it was bound to. A user
// may have any number of channels.
func (r *Registry) BindUser(ch *channel.Channel, id string) error {
	return r.bindOne(ch, KindUser, id)
}

// BindToken binds ch to token, replacing the token it was bound to. A token
// may have any number of channels.
func (r *Registry) BindToken(ch *channel.Channel, token string) error {
	return r.bindOne(ch, KindToken, token)
}

// BindBsID binds ch to the business id, replacing the one it was bound to. A
// business id has one channel: if another holds it, it moves to ch (and the
// other is reported unbound).
func (r *Registry) BindBsID(ch *channel.Channel, id string) error {
	return r.bindOne(ch, KindBsID, id)
}

func (r *Registry) bindOne(ch *channel.Channel, k Kind, key string) error {
	if key == "" {
		return fmt.Errorf("group: bind %s: %w", k, ErrEmptyKey)
	}
	rs := r.recShard(ch)
	var evs []event
	rs.mu.Lock()
	if !r.attached(ch) {
		rs.mu.Unlock()
		return fmt.Errorf("group: bind %s %q to %v: %w", k, key, ch, ErrNotOpen)
	}
	rc := rs.m[ch.ID()]
	if rc == nil {
		rc = &rec{}
		rs.m[ch.ID()] = rc
	}
	f := rc.field(k)
	if *f == key && (k != KindBsID || r.bsIDs.get(key) == ch) {
		rs.mu.Unlock()
		return nil
	}
	if old := *f; old != "" && r.removeOne(ch, k, old) {
		evs = r.note(evs, ch, k, old, false)
	}
	*f = key
	switch k {
	case KindUser:
		r.users.add(key, ch)
	case KindToken:
		r.tokens.add(key, ch)
	case KindBsID:
		if prev := r.bsIDs.set(key, ch); prev != nil && prev != ch {
			evs = r.note(evs, prev, KindBsID, key, false)
		}
	}
	evs = r.note(evs, ch, k, key, true)
	rs.mu.Unlock()
	r.fire(evs)
	return nil
}

// removeOne takes ch out of key's set in k's index, reporting whether it
// was there. Call it with ch's record shard locked.
func (r *Registry) removeOne(ch *channel.Channel, k Kind, key string) bool {
	switch k {
	case KindUser:
		return r.users.remove(key, ch)
	case KindGroup:
		return r.groups.remove(key, ch)
	case KindToken:
		return r.tokens.remove(key, ch)
	case KindBsID:
		return r.bsIDs.removeIf(key, ch)
	}
	return false
}

// removeAll takes ch out of every index its record names.
func (r *Registry) removeAll(ch *channel.Channel, rc *rec, evs []event) []event {
	for _, k := range [...]Kind{KindUser, KindToken, KindBsID} {
		if key := *rc.field(k); key != "" && r.removeOne(ch, k, key) {
			evs = r.note(evs, ch, k, key, false)
		}
	}
	for g := range rc.groups {
		if r.groups.remove(g, ch) {
			evs = r.note(evs, ch, KindGroup, g, false)
		}
	}
	return evs
}

// prune drops a stale business id hint and frees an empty record. Call it
// with ch's record shard locked.
func (r *Registry) prune(rs *recShard, ch *channel.Channel, rc *rec) {
	if rc.bsID != "" && r.bsIDs.get(rc.bsID) != ch {
		rc.bsID = ""
	}
	if rc.empty() {
		delete(rs.m, ch.ID())
	}
}

// UnbindUser unbinds ch from its user and returns the user id it had ("" if
// none).
func (r *Registry) UnbindUser(ch *channel.Channel) string { return r.unbindOne(ch, KindUser, "") }

// UnbindToken unbinds ch from its token and returns the token ("" if none).
func (r *Registry) UnbindToken(ch *channel.Channel) string { return r.unbindOne(ch, KindToken, "") }

// UnbindBsID unbinds ch from its business id and returns it ("" if none,
// or if another channel has taken it since).
func (r *Registry) UnbindBsID(ch *channel.Channel) string { return r.unbindOne(ch, KindBsID, "") }

// unbindOne unbinds ch from its binding of kind k if it is want (any, if
// want is empty) and returns the key it had.
func (r *Registry) unbindOne(ch *channel.Channel, k Kind, want string) string {
	rs := r.recShard(ch)
	rs.mu.Lock()
	rc := rs.m[ch.ID()]
	if rc == nil {
		rs.mu.Unlock()
		return ""
	}
	f := rc.field(k)
	old := *f
	if want != "" && old != want {
		rs.mu.Unlock()
		return ""
	}
	*f = ""
	removed := old != "" && r.removeOne(ch, k, old)
	r.prune(rs, ch, rc)
	rs.mu.Unlock()
	if !removed {
		return ""
	}
	r.fire(r.note(nil, ch, k, old, false))
	return old
}

// BindGroup adds ch to group g. A channel may be in any number of groups;
// adding it again does nothing.
func (r *Registry) BindGroup(ch *channel.Channel, g string) error {
	if g == "" {
		return fmt.Errorf("group: bind group: %w", ErrEmptyKey)
	}
	rs := r.recShard(ch)
	rs.mu.Lock()
	if !r.attached(ch) {
		rs.mu.Unlock()
		return fmt.Errorf("group: bind group %q to %v: %w", g, ch, ErrNotOpen)
	}
	rc := rs.m[ch.ID()]
	if rc == nil {
		rc = &rec{}
		rs.m[ch.ID()] = rc
	}
	if rc.groups == nil {
		rc.groups = make(map[string]struct{}, 1)
	} else if _, ok := rc.groups[g]; ok {
		rs.mu.Unlock()
		return nil
	}
	rc.groups[g] = struct{}{}
	r.groups.add(g, ch)
	rs.mu.Unlock()
	r.fire(r.note(nil, ch, KindGroup, g, true))
	return nil
}

// UnbindGroup takes ch out of group g and reports whether it was in it.
func (r *Registry) UnbindGroup(ch *channel.Channel, g string) bool {
	rs := r.recShard(ch)
	rs.mu.Lock()
	rc := rs.m[ch.ID()]
	if rc == nil {
		rs.mu.Unlock()
		return false
	}
	if _, ok := rc.groups[g]; !ok {
		rs.mu.Unlock()
		return false
	}
	delete(rc.groups, g)
	r.groups.remove(g, ch)
	r.prune(rs, ch, rc)
	rs.mu.Unlock()
	r.fire(r.note(nil, ch, KindGroup, g, false))
	return true
}

// UnbindAll removes every binding of ch (user, groups, token, business id).
// ch stays open and indexed by its IP.
func (r *Registry) UnbindAll(ch *channel.Channel) { r.unbindAll(ch, false) }

// unbindAll removes every binding of ch and, when detach is set, its IP
// index entry too, under ch's record shard lock; then it reports the
// unbind events.
func (r *Registry) unbindAll(ch *channel.Channel, detach bool) {
	rs := r.recShard(ch)
	rs.mu.Lock()
	rc := rs.m[ch.ID()]
	var evs []event
	if rc != nil {
		delete(rs.m, ch.ID())
		evs = r.removeAll(ch, rc, evs)
	}
	if detach {
		// Out of the table last: whoever sees it gone (Len, Each, a
		// count of All) sees it out of every index too.
		if r.ipsOn.Load() {
			r.ips.remove(ipOf(ch), ch)
		}
		r.tab.remove(ch)
		r.gen.Add(1)
	}
	rs.mu.Unlock()
	r.fire(evs)
}

// BindUserToGroup adds every channel of user id to group g and returns how
// many it added (channels already in g are not counted).
func (r *Registry) BindUserToGroup(id, g string) (int, error) {
	if g == "" {
		return 0, fmt.Errorf("group: bind group: %w", ErrEmptyKey)
	}
	n := 0
	for _, ch := range r.users.members(id) {
		if r.groups.contains(g, ch) {
			continue
		}
		if r.BindGroup(ch, g) == nil {
			n++
		}
	}
	return n, nil
}

// UnbindUserFromGroup takes every channel of user id out of group g and
// returns how many it took out.
func (r *Registry) UnbindUserFromGroup(id, g string) int {
	n := 0
	for _, ch := range r.users.members(id) {
		if r.UnbindGroup(ch, g) {
			n++
		}
	}
	return n
}

// Members returns the channels bound to key in the index of kind k, as a
// shared snapshot in no particular order: do not modify it. It is nil if
// there are none. For KindBsID it holds the business id's channel.
func (r *Registry) Members(k Kind, key string) []*channel.Channel {
	switch k {
	case KindUser:
		return r.users.members(key)
	case KindGroup:
		return r.groups.members(key)
	case KindToken:
		return r.tokens.members(key)
	case KindBsID:
		if ch := r.bsIDs.get(key); ch != nil {
			return []*channel.Channel{ch}
		}
	}
	return nil
}

// MembersOfIP returns the open channels from ip, as a shared snapshot in no
// particular order: do not modify it.
func (r *Registry) MembersOfIP(ip netip.Addr) []*channel.Channel {
	return r.ipIndex().members(ip.Unmap())
}

// All returns every open channel, as a shared snapshot in no particular
// order: do not modify it. The snapshot is rebuilt after channels open or
// close, and reused as long as none do.
func (r *Registry) All() []*channel.Channel {
	g := r.gen.Load()
	if a := r.all.Load(); a != nil && a.gen == g {
		return a.list
	}
	var list []*channel.Channel
	if a := r.all.Load(); a != nil {
		list = make([]*channel.Channel, 0, len(a.list)+len(a.list)/8+1)
	}
	r.tab.each(func(ch *channel.Channel) bool {
		list = append(list, ch)
		return true
	})
	r.all.Store(&allSnap{gen: g, list: list})
	return list
}

// BsID returns the channel bound to business id, or nil.
func (r *Registry) BsID(id string) *channel.Channel { return r.bsIDs.get(id) }

// Count returns the number of channels bound to key in the index of kind k.
func (r *Registry) Count(k Kind, key string) int {
	switch k {
	case KindUser:
		return r.users.count(key)
	case KindGroup:
		return r.groups.count(key)
	case KindToken:
		return r.tokens.count(key)
	case KindBsID:
		if r.bsIDs.get(key) != nil {
			return 1
		}
	}
	return 0
}

// CountIP returns the number of open channels from ip.
func (r *Registry) CountIP(ip netip.Addr) int { return r.ipIndex().count(ip.Unmap()) }

// Of returns the user id, token or business id (by k) that ch is bound to,
// or "".
func (r *Registry) Of(ch *channel.Channel, k Kind) string {
	if k == KindGroup {
		return ""
	}
	rs := r.recShard(ch)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rc := rs.m[ch.ID()]
	if rc == nil {
		return ""
	}
	if k == KindBsID && rc.bsID != "" && r.bsIDs.get(rc.bsID) != ch {
		return ""
	}
	return *rc.field(k)
}

// GroupsOf returns the groups ch is in, sorted.
func (r *Registry) GroupsOf(ch *channel.Channel) []string {
	rs := r.recShard(ch)
	rs.mu.Lock()
	var gs []string
	if rc := rs.m[ch.ID()]; rc != nil && len(rc.groups) > 0 {
		gs = make([]string, 0, len(rc.groups))
		for g := range rc.groups {
			gs = append(gs, g)
		}
	}
	rs.mu.Unlock()
	slices.Sort(gs)
	return gs
}

// InGroup reports whether ch is in group g.
func (r *Registry) InGroup(ch *channel.Channel, g string) bool { return r.groups.contains(g, ch) }

// Sizes counts the entries of a registry's indexes.
type Sizes struct {
	Users  int // user ids with at least one channel
	Groups int // groups with at least one channel
	Tokens int // tokens with at least one channel
	BsIDs  int // business ids bound
	IPs    int // IPs with at least one open channel
	Bound  int // channels with at least one binding record
}

// Sizes returns the number of keys in each index. Once every channel has
// closed, all are zero.
func (r *Registry) Sizes() Sizes {
	s := Sizes{
		Users:  r.users.keys(),
		Groups: r.groups.keys(),
		Tokens: r.tokens.keys(),
		BsIDs:  r.bsIDs.keys(),
		IPs:    r.ipIndex().keys(),
	}
	for i := range r.recs {
		rs := &r.recs[i]
		rs.mu.Lock()
		s.Bound += len(rs.m)
		rs.mu.Unlock()
	}
	return s
}

// SortByID returns a sorted copy of chs, in ascending channel id: the
// stable order of queries and pages.
func SortByID(chs []*channel.Channel) []*channel.Channel {
	out := slices.Clone(chs)
	slices.SortFunc(out, func(a, b *channel.Channel) int { return cmp.Compare(a.ID(), b.ID()) })
	return out
}
