package cluster

import (
	"slices"
	"sync"
	"time"
)

// Rosters are named sets of members replicated like presence: a chat
// room's users, a document's editors. The application says who enters and
// exits on its node (Node.Enter, Node.Exit); every node learns the others'
// rosters from <prefix>.rosters, and answers Node.Roster and
// Node.InRoster from memory. A node's rosters are dropped with its
// presence: when it says goodbye, restarts, or stays silent past its TTL.

// ---- this node's rosters --------------------------------------------------

// rosterKey names one member of one roster.
type rosterKey struct{ roster, member string }

// rosterEntry is a member's count in a roster, for the wire.
type rosterEntry struct {
	rosterKey
	n int32
}

// selfRosters holds this node's rosters, exactly. Entering and exiting
// take one lock for a map update (rosters change when people join and
// leave rooms, far less often than they send); the heartbeat goroutine
// reads what changed.
type selfRosters struct {
	mu    sync.Mutex
	m     map[string]map[string]int32 // roster → member → count (> 0)
	dirty map[rosterKey]struct{}      // changed since the last publication
}

func (s *selfRosters) init() {
	s.m = make(map[string]map[string]int32)
	s.dirty = make(map[rosterKey]struct{})
}

// add changes member's count in roster by d (never below zero) and reports
// whether anything changed.
func (s *selfRosters) add(roster, member string, d int32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.m[roster]
	old := ms[member]
	n := max(old+d, 0)
	if n == old {
		return false
	}
	if n == 0 {
		delete(ms, member)
		if len(ms) == 0 {
			delete(s.m, roster)
		}
	} else {
		if ms == nil {
			ms = make(map[string]int32)
			s.m[roster] = ms
		}
		ms[member] = n
	}
	s.dirty[rosterKey{roster, member}] = struct{}{}
	return true
}

// has reports whether member is in roster here.
func (s *selfRosters) has(roster, member string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[roster][member] > 0
}

// members adds roster's members here to set.
func (s *selfRosters) members(roster string, set map[string]struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.m[roster] {
		set[m] = struct{}{}
	}
}

// collect returns what changed since the last call (every entry, for a full
// state), appended to out.
func (s *selfRosters) collect(full bool, out []rosterEntry) []rosterEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if full {
		for r, ms := range s.m {
			for m, n := range ms {
				out = append(out, rosterEntry{rosterKey{r, m}, n})
			}
		}
	} else {
		for k := range s.dirty {
			out = append(out, rosterEntry{k, s.m[k.roster][k.member]})
		}
	}
	clear(s.dirty)
	return out
}

// count returns the number of rosters with a member here.
func (s *selfRosters) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// ---- other nodes' rosters -------------------------------------------------

// Charges of other nodes' rosters to MaxPresenceBytes, beyond the names'
// bytes: a roster of a peer, a member of it.
const (
	rosterCost       = 64
	rosterMemberCost = 48
)

// setRoster records that p's roster has member count times (with v.mu
// held). It reports whether the member appeared or disappeared, and false
// in ok if the entry was dropped for the memory bound.
func (v *view) setRoster(p *peer, roster, member []byte, n int32) (changed, ok bool) {
	ms := p.rosters[string(roster)]
	_, had := ms[string(member)]
	switch {
	case n == 0 && !had:
		return false, true
	case n == 0:
		delete(ms, string(member))
		v.bytes -= int64(len(member)) + rosterMemberCost
		if len(ms) == 0 {
			delete(p.rosters, string(roster))
			v.bytes -= int64(len(roster)) + rosterCost
		}
		return true, true
	case had:
		ms[string(member)] = n
		return false, true
	}
	cost := int64(len(member)) + rosterMemberCost
	if ms == nil {
		cost += int64(len(roster)) + rosterCost
	}
	if v.bytes+cost > v.limit {
		return false, false
	}
	if ms == nil {
		ms = make(map[string]int32)
		p.rosters[string(roster)] = ms
	}
	ms[string(member)] = n
	v.bytes += cost
	return true, true
}

// resetRosters forgets p's rosters (with v.mu held), appending their names
// to changed.
func (v *view) resetRosters(p *peer, changed []string) []string {
	for r, ms := range p.rosters {
		changed = append(changed, r)
		v.bytes -= int64(len(r)) + rosterCost
		for m := range ms {
			v.bytes -= int64(len(m)) + rosterMemberCost
		}
	}
	p.rosters = make(map[string]map[string]int32)
	p.rover = false
	return changed
}

// applyRosters applies a roster update from another node, appending to
// changed the rosters whose members changed. An update from a node not in
// the view, or of another epoch than its presence's, is ignored (ok
// false): presence introduces nodes, and a node that joins is asked for
// its rosters.
func (v *view) applyRosters(m *presMsg, now time.Time, changed []string) (_ []string, dropped, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.peers[string(m.origin)]
	if p == nil || p.epoch != m.epoch {
		return changed, false, false
	}
	if m.seq != p.rnext {
		p.rsynced = false
	}
	if m.flags&flagReset != 0 {
		changed = v.resetRosters(p, changed)
		p.rsynced, p.rneed = true, false
	}
	m.eachRoster(func(roster, member []byte, n int32) {
		c, ok := v.setRoster(p, roster, member, n)
		if !ok {
			dropped = true
		}
		if c {
			changed = append(changed, string(roster))
		}
	})
	if dropped {
		p.rover = true
	}
	p.rnext = m.seq + 1
	p.seen, p.ttl = now, m.ttl
	if !p.rsynced {
		p.rneed = true
	}
	return changed, dropped, true
}

// rosterMembers adds roster's members on the other nodes alive to set.
func (v *view) rosterMembers(roster string, now time.Time, set map[string]struct{}) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, p := range v.peers {
		if ms := p.rosters[roster]; len(ms) > 0 && p.alive(now) {
			for m := range ms {
				set[m] = struct{}{}
			}
		}
	}
}

// inRoster reports whether member is in roster on another node alive.
func (v *view) inRoster(roster, member string, now time.Time) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, p := range v.peers {
		if p.rosters[roster][member] > 0 && p.alive(now) {
			return true
		}
	}
	return false
}

// distinct sorts names and drops repeats.
func distinct(names []string) []string {
	slices.Sort(names)
	return slices.Compact(names)
}
