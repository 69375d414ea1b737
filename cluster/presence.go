package cluster

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Presence is where one user is online across the cluster.
type Presence struct {
	// Conns is the number of the user's connections, on every node.
	Conns int
	// Nodes are the nodes where the user has connections, by node id.
	Nodes []NodeConns
}

// Online reports whether the user has a connection anywhere.
func (p Presence) Online() bool { return p.Conns > 0 }

// NodeConns is one node's share of a user's connections.
type NodeConns struct {
	Node  string
	Conns int
}

// NodeInfo describes a node of the cluster as this node sees it.
type NodeInfo struct {
	ID      string
	Self    bool      // this node
	Users   int       // users with a connection on the node
	Conns   int       // connections bound to a user on the node
	Rosters int       // rosters with a member on the node
	Seen    time.Time // its last heartbeat (now, for this node)
	// Synced: this node holds the node's whole presence (it has received
	// a full state and every update since). A node is not synced for a
	// moment after it joins, after a lost update (it is then asked for a
	// full state) or while its presence is over MaxPresenceBytes.
	Synced bool
	// RostersSynced is Synced for the node's rosters, which are numbered
	// and asked for on their own.
	RostersSynced bool
}

// Counts are cluster-wide totals.
type Counts struct {
	Nodes int // nodes alive, this one included
	Users int // distinct users online (a user on two nodes counts once)
	Conns int // connections bound to a user
}

// ---- this node's presence -------------------------------------------------

const nSelfShards = 32

// selfPresence counts this node's connections per user. Its hot path (the
// server's bind hooks, often on an event loop) takes one shard's lock for a
// map update; the heartbeat goroutine reads what changed.
type selfPresence struct {
	seed   maphash.Seed
	shards [nSelfShards]selfShard
	conns  atomic.Int64
	users  atomic.Int64
}

type selfShard struct {
	mu    sync.Mutex
	m     map[string]selfEntry
	dirty []string // keys changed since the last heartbeat
	_     [64]byte // keep shards' locks on their own cache lines
}

type selfEntry struct {
	n     int32 // connections (briefly negative when an unbind's hook runs before its bind's)
	pub   bool  // counted in the view's aggregate
	dirty bool  // in the shard's dirty list
}

func (s *selfPresence) init() {
	s.seed = maphash.MakeSeed()
	for i := range s.shards {
		s.shards[i].m = make(map[string]selfEntry)
	}
}

func (s *selfPresence) shard(key string) *selfShard {
	return &s.shards[maphash.String(s.seed, key)%nSelfShards]
}

// add changes key's connections by d.
func (s *selfPresence) add(key string, d int32) {
	sh := s.shard(key)
	sh.mu.Lock()
	e := sh.m[key]
	old := e.n
	e.n += d
	if !e.dirty {
		e.dirty = true
		sh.dirty = append(sh.dirty, key)
	}
	sh.m[key] = e
	sh.mu.Unlock()
	s.conns.Add(int64(d))
	switch {
	case old <= 0 && e.n > 0:
		s.users.Add(1)
	case old > 0 && e.n <= 0:
		s.users.Add(-1)
	}
}

// conns returns key's connections here.
func (s *selfPresence) count(key string) int {
	sh := s.shard(key)
	sh.mu.Lock()
	n := sh.m[key].n
	sh.mu.Unlock()
	return int(max(n, 0))
}

type entry struct {
	key string
	n   int32
}

// collect returns what changed since the last call (every key with its
// count, for a full state) and the changes of the aggregate it implies.
func (s *selfPresence) collect(full bool, out []entry, agg []entry) ([]entry, []entry) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if full {
			for k, e := range sh.m {
				if e.n > 0 {
					out = append(out, entry{k, e.n})
				}
			}
		}
		for _, k := range sh.dirty {
			e := sh.m[k]
			if !full {
				out = append(out, entry{k, max(e.n, 0)})
			}
			e.dirty = false
			switch {
			case e.n > 0 && !e.pub:
				e.pub = true
				agg = append(agg, entry{k, 1})
			case e.n <= 0 && e.pub:
				e.pub = false
				agg = append(agg, entry{k, -1})
			}
			if e.n == 0 && !e.pub {
				delete(sh.m, k)
			} else {
				sh.m[k] = e
			}
		}
		clear(sh.dirty)
		if cap(sh.dirty) > 4096 {
			sh.dirty = nil
		} else {
			sh.dirty = sh.dirty[:0]
		}
		sh.mu.Unlock()
	}
	return out, agg
}

// ---- other nodes' presence ------------------------------------------------

// view is the presence of the other nodes, as their heartbeats told it,
// and the cluster's aggregate. Only the presence subscription's goroutine
// and the heartbeat goroutine write it.
type view struct {
	mu    sync.RWMutex
	peers map[string]*peer
	agg   map[string]int32 // user → nodes where online (this one as of its last heartbeat)
	bytes int64            // charged to MaxPresenceBytes
	limit int64
	max   int // MaxNodes
}

type peer struct {
	id       string
	epoch    uint64
	next     uint64 // the seq expected next
	synced   bool
	over     bool // entries were dropped: over MaxPresenceBytes
	ttl      time.Duration
	seen     time.Time
	asked    time.Time // when a full state was last asked of it
	users    map[string]int32
	conns    int64
	needSync bool

	// Its rosters (roster → member → count), numbered on their own.
	rosters map[string]map[string]int32
	rnext   uint64 // the roster seq expected next
	rsynced bool
	rover   bool // roster entries were dropped: over MaxPresenceBytes
	rneed   bool // ask for its full rosters
	rasked  time.Time
}

func newPeer(id string, epoch, seq uint64) *peer {
	return &peer{id: id, epoch: epoch, next: seq, users: make(map[string]int32), rosters: make(map[string]map[string]int32), rneed: true}
}

// Charges of an entry to MaxPresenceBytes, beyond its key's bytes.
const (
	peerEntryCost = 48
	aggEntryCost  = 32
)

func (v *view) init(limit int64, maxNodes int) {
	v.peers = make(map[string]*peer)
	v.agg = make(map[string]int32)
	v.limit, v.max = limit, maxNodes
}

func (p *peer) alive(now time.Time) bool { return now.Sub(p.seen) <= p.ttl }

// aggAdd changes the aggregate for key by d (with v.mu held).
func (v *view) aggAdd(key string, d int32) {
	old, ok := v.agg[key]
	switch n := old + d; {
	case n > 0:
		if !ok {
			v.bytes += int64(len(key)) + aggEntryCost
		}
		v.agg[key] = n
	case ok:
		v.bytes -= int64(len(key)) + aggEntryCost
		delete(v.agg, key)
	}
}

// set records that p's user key has n connections (with v.mu held). It
// reports false if the entry was dropped for the memory bound.
func (v *view) set(p *peer, key []byte, n int32) bool {
	old, ok := p.users[string(key)]
	switch {
	case n == 0 && !ok:
		return true
	case n == 0:
		delete(p.users, string(key))
		p.conns -= int64(old)
		v.bytes -= int64(len(key)) + peerEntryCost
		v.aggAdd(string(key), -1)
	case ok:
		p.users[string(key)] = n
		p.conns += int64(n - old)
	default:
		if v.bytes+2*int64(len(key))+peerEntryCost+aggEntryCost > v.limit {
			return false
		}
		k := string(key)
		p.users[k] = n
		p.conns += int64(n)
		v.bytes += int64(len(k)) + peerEntryCost
		v.aggAdd(k, 1)
	}
	return true
}

// reset forgets p's users (with v.mu held).
func (v *view) reset(p *peer) {
	for k := range p.users {
		v.bytes -= int64(len(k)) + peerEntryCost
		v.aggAdd(k, -1)
	}
	p.users = make(map[string]int32)
	p.conns = 0
	p.over = false
}

// remove forgets p, its users and its rosters (with v.mu held), appending
// the names of its rosters to changed.
func (v *view) remove(p *peer, changed []string) []string {
	v.reset(p)
	changed = v.resetRosters(p, changed)
	delete(v.peers, p.id)
	return changed
}

// applyUpdate applies an update from another node and returns the peer's
// id if the node is new to the view, and whether entries were dropped; the
// rosters of a node that restarted (a new epoch) are appended to changed.
// It returns ok false if the node could not be tracked (over MaxNodes).
func (v *view) applyUpdate(m *presMsg, now time.Time, changed []string) (_ []string, joined, dropped, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.peers[string(m.origin)]
	if p == nil {
		if len(v.peers) >= v.max {
			return changed, false, false, false
		}
		p = newPeer(string(m.origin), m.epoch, m.seq)
		v.peers[p.id] = p
		joined = true
	}
	if p.epoch != m.epoch {
		// The node restarted: what we held of it is void.
		v.reset(p)
		changed = v.resetRosters(p, changed)
		p.epoch, p.next, p.synced = m.epoch, m.seq, false
		p.rnext, p.rsynced, p.rneed = 0, false, true
	}
	if m.seq != p.next {
		p.synced = false
	}
	if m.flags&flagReset != 0 {
		v.reset(p)
		p.synced = true
	}
	m.each(func(key []byte, n int32) {
		if !v.set(p, key, n) {
			dropped = true
		}
	})
	if dropped {
		p.over = true
	}
	p.next = m.seq + 1
	p.seen, p.ttl = now, m.ttl
	if !p.synced {
		p.needSync = true
	}
	return changed, joined, dropped, true
}

// bye forgets a node that said goodbye, appending its rosters to changed.
func (v *view) bye(origin []byte, epoch uint64, changed []string) ([]string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.peers[string(origin)]
	if p == nil || p.epoch != epoch {
		return changed, false
	}
	return v.remove(p, changed), true
}

// swept is what a sweep found.
type swept struct {
	expired []string // nodes forgotten
	ask     []string // nodes to ask for their full presence
	askR    []string // nodes to ask for their full rosters
	changed []string // rosters of the expired nodes
}

// sweep forgets the nodes not heard of within their TTL, applies this
// node's changes to the aggregate, and returns the expired nodes' ids and
// those to ask for a full state.
func (v *view) sweep(now time.Time, selfAgg []entry, every time.Duration) (s swept) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range selfAgg {
		v.aggAdd(e.key, e.n)
	}
	for _, p := range v.peers {
		if !p.alive(now) {
			s.expired = append(s.expired, p.id)
			s.changed = v.remove(p, s.changed)
			continue
		}
		if p.needSync && now.Sub(p.asked) >= every {
			p.needSync = false
			p.asked = now
			s.ask = append(s.ask, p.id)
		}
		if p.rneed && now.Sub(p.rasked) >= every {
			p.rneed = false
			p.rasked = now
			s.askR = append(s.askR, p.id)
		}
	}
	return s
}

// user returns where key is online among the other nodes, appended to ns.
func (v *view) user(key string, now time.Time, ns []NodeConns) []NodeConns {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.agg[key] == 0 {
		return ns
	}
	for _, p := range v.peers {
		if n := p.users[key]; n > 0 && p.alive(now) {
			ns = append(ns, NodeConns{p.id, int(n)})
		}
	}
	return ns
}

// nodes returns the other nodes alive, appended to ns.
func (v *view) nodes(now time.Time, ns []NodeInfo) []NodeInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, p := range v.peers {
		if p.alive(now) {
			ns = append(ns, NodeInfo{ID: p.id, Users: len(p.users), Conns: int(p.conns), Rosters: len(p.rosters), Seen: p.seen,
				Synced: p.synced && !p.over, RostersSynced: p.rsynced && !p.rover})
		}
	}
	return ns
}

// counts returns the other nodes' totals and the aggregate's users.
func (v *view) counts(now time.Time) (nodes, users, conns int) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, p := range v.peers {
		if p.alive(now) {
			nodes++
			conns += int(p.conns)
		}
	}
	return nodes, len(v.agg), conns
}

func sortNodes[T any](s []T, id func(T) string) {
	slices.SortFunc(s, func(a, b T) int { return strings.Compare(id(a), id(b)) })
}
