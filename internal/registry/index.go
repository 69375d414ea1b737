package registry

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/tiogo/tio/channel"
)

// nShards is the number of independently locked parts of an index, so that
// binds and sends on different keys from different goroutines seldom meet.
const nShards = 16

// set is the channels bound to one key. Its map is guarded by the lock of
// the index shard that holds it. snap caches the members as a slice for
// fan-outs and queries: it is built under the shard's read lock on first use
// and dropped, under the write lock, by every change, so a published
// snapshot never changes and can be iterated with no lock held.
type set struct {
	m    map[*channel.Channel]struct{}
	snap atomic.Pointer[[]*channel.Channel]
}

// members returns the cached snapshot, building it if needed. Call it with
// the shard at least read-locked. The slice is shared: do not modify it.
func (s *set) members() []*channel.Channel {
	if p := s.snap.Load(); p != nil {
		return *p
	}
	l := make([]*channel.Channel, 0, len(s.m))
	for ch := range s.m {
		l = append(l, ch)
	}
	s.snap.Store(&l)
	return l
}

// index maps keys to sets of channels, in nShards locked shards. Empty sets
// are deleted, so an index holds only keys that have channels.
type index[K comparable] struct {
	seed   maphash.Seed
	shards [nShards]ishard[K]
}

type ishard[K comparable] struct {
	mu sync.RWMutex
	m  map[K]*set
	_  [32]byte // one shard per 64-byte cache line
}

func (x *index[K]) init() {
	x.seed = maphash.MakeSeed()
	for i := range x.shards {
		x.shards[i].m = make(map[K]*set)
	}
}

func (x *index[K]) shard(k K) *ishard[K] {
	return &x.shards[maphash.Comparable(x.seed, k)%nShards]
}

// add puts ch in k's set and reports whether it was not there.
func (x *index[K]) add(k K, ch *channel.Channel) bool {
	sh := x.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[k]
	if s == nil {
		s = &set{m: make(map[*channel.Channel]struct{}, 1)}
		sh.m[k] = s
	} else if _, ok := s.m[ch]; ok {
		return false
	}
	s.m[ch] = struct{}{}
	s.snap.Store(nil)
	return true
}

// remove takes ch out of k's set, deleting the set if it empties, and
// reports whether ch was there.
func (x *index[K]) remove(k K, ch *channel.Channel) bool {
	sh := x.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[k]
	if s == nil {
		return false
	}
	if _, ok := s.m[ch]; !ok {
		return false
	}
	if len(s.m) == 1 {
		delete(sh.m, k)
		return true
	}
	delete(s.m, ch)
	s.snap.Store(nil)
	return true
}

// contains reports whether ch is in k's set.
func (x *index[K]) contains(k K, ch *channel.Channel) bool {
	sh := x.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	s := sh.m[k]
	if s == nil {
		return false
	}
	_, ok := s.m[ch]
	return ok
}

// members returns k's members as a shared, read-only snapshot (nil if none).
func (x *index[K]) members(k K) []*channel.Channel {
	sh := x.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	s := sh.m[k]
	if s == nil {
		return nil
	}
	return s.members()
}

// count returns the size of k's set.
func (x *index[K]) count(k K) int {
	sh := x.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if s := sh.m[k]; s != nil {
		return len(s.m)
	}
	return 0
}

// keys returns the number of keys (each with at least one channel).
func (x *index[K]) keys() int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// unique maps keys to exactly one channel each (business ids).
type unique struct {
	seed   maphash.Seed
	shards [nShards]ushard
}

type ushard struct {
	mu sync.RWMutex
	m  map[string]*channel.Channel
	_  [32]byte
}

func (u *unique) init() {
	u.seed = maphash.MakeSeed()
	for i := range u.shards {
		u.shards[i].m = make(map[string]*channel.Channel)
	}
}

func (u *unique) shard(k string) *ushard {
	return &u.shards[maphash.String(u.seed, k)%nShards]
}

// set makes ch the holder of k and returns the previous holder, if any.
func (u *unique) set(k string, ch *channel.Channel) (prev *channel.Channel) {
	sh := u.shard(k)
	sh.mu.Lock()
	prev = sh.m[k]
	sh.m[k] = ch
	sh.mu.Unlock()
	return prev
}

// removeIf deletes k if ch holds it, and reports whether it did.
func (u *unique) removeIf(k string, ch *channel.Channel) bool {
	sh := u.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[k] != ch {
		return false
	}
	delete(sh.m, k)
	return true
}

func (u *unique) get(k string) *channel.Channel {
	sh := u.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[k]
}

func (u *unique) keys() int {
	n := 0
	for i := range u.shards {
		sh := &u.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
