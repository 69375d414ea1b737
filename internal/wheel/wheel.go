// Package wheel finds idle connections without a goroutine or a timer per
// connection.
//
// A [Wheel] is a hashed timing wheel: each item sits in the slot of the time
// at which it should next be examined. Advancing the wheel visits only the
// slots whose time has come, and asks each item there what to do. The check is
// lazy: traffic does not touch the wheel at all (a connection only stores the
// time of its last read, which it does anyway); when an item's slot comes up,
// the check compares that time with the deadline and either acts (closes an
// idle connection, sends a keepalive) or puts the item back at its new
// deadline. So each connection costs O(1) work per timeout period, however
// many connections there are, and nothing per packet.
package wheel

import (
	"sync"
	"time"
)

// Check examines an item whose scheduled time has come. It returns the next
// time to examine it, or the zero time to drop it from the wheel.
type Check[T any] func(item T, now time.Time) (next time.Time)

// Wheel schedules items of type T. Its methods are safe for concurrent use.
//
// A slot holds its items in a chain of fixed-size blocks, and drained
// blocks go to a free list for the next items: a wheel that holds steady
// allocates nothing, and a growing one allocates blocks, never a slice that
// doubles and leaves its old copy behind as garbage.
type Wheel[T any] struct {
	tick  int64 // slot width, nanoseconds
	check Check[T]

	mu    sync.Mutex
	slots []*block[T] // each slot's chain; its head block is being filled
	next  int64       // the first tick (time/tick) not yet processed
	n     int         // items in the wheel
	free  *block[T]   // drained blocks, for reuse
	nfree int

	advance sync.Mutex // serializes Advance, which owns ready
	ready   []entry[T] // the items due in the tick being processed
}

type entry[T any] struct {
	item T
	at   int64 // unix nanoseconds
}

// blockLen entries make a block of 256 bytes when T is a pointer: a slot's
// partly filled head block wastes little, and a full one costs 17 bytes
// per item.
const blockLen = 15

type block[T any] struct {
	next *block[T]
	n    int
	e    [blockLen]entry[T]
}

// NewWheel returns a wheel of slots slots, each tick wide, that calls check.
// Items further away than slots×tick wait for their time in a later round.
func New[T any](tick time.Duration, slots int, check Check[T]) *Wheel[T] {
	if tick <= 0 {
		tick = 100 * time.Millisecond
	}
	slots = max(slots, 8)
	return &Wheel[T]{
		tick:  int64(tick),
		check: check,
		slots: make([]*block[T], slots),
		next:  time.Now().UnixNano() / int64(tick),
	}
}

// Tick returns the wheel's resolution.
func (w *Wheel[T]) Tick() time.Duration { return time.Duration(w.tick) }

// Len returns the number of items in the wheel.
func (w *Wheel[T]) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Add schedules item to be examined at time at (or at the next tick if at
// is already past).
func (w *Wheel[T]) Add(item T, at time.Time) {
	w.mu.Lock()
	w.add(item, at.UnixNano())
	w.mu.Unlock()
}

// slotOf returns the first tick at or after at: an item is never examined
// before its time.
func (w *Wheel[T]) slotOf(at int64) int64 { return (at + w.tick - 1) / w.tick }

// add puts an item in its slot. Call it with mu held.
func (w *Wheel[T]) add(item T, at int64) {
	t := max(w.slotOf(at), w.next)
	w.push(&w.slots[t%int64(len(w.slots))], entry[T]{item, at})
	w.n++
}

// push appends e to a slot's chain. Call it with mu held.
func (w *Wheel[T]) push(head **block[T], e entry[T]) {
	b := *head
	if b == nil || b.n == blockLen {
		nb := w.free
		if nb != nil {
			w.free, w.nfree = nb.next, w.nfree-1
		} else {
			nb = new(block[T])
		}
		nb.next = b
		*head, b = nb, nb
	}
	b.e[b.n] = e
	b.n++
}

// recycle clears a drained block and keeps it for reuse, up to a bound that
// follows the wheel's size (a wheel that shrinks lets its blocks go).
// Call it with mu held.
func (w *Wheel[T]) recycle(b *block[T]) {
	clear(b.e[:b.n]) // drop the items for the collector
	b.n = 0
	if w.nfree >= 64+w.n/blockLen/4 {
		b.next = nil
		return
	}
	b.next, w.free = w.free, b
	w.nfree++
}

// Advance examines every item whose time is at or before now. Call it
// regularly (every Tick); calls are serialized.
func (w *Wheel[T]) Advance(now time.Time) {
	w.advance.Lock()
	defer w.advance.Unlock()
	nowNs := now.UnixNano()
	last := nowNs / w.tick
	for {
		w.mu.Lock()
		if w.next > last {
			w.mu.Unlock()
			return
		}
		t := w.next
		w.next++
		i := t % int64(len(w.slots))
		chain := w.slots[i]
		w.slots[i] = nil
		ready := w.ready[:0]
		for b := chain; b != nil; {
			for _, e := range b.e[:b.n] {
				if w.slotOf(e.at) > t {
					w.push(&w.slots[i], e) // a later round: stays in the slot
				} else {
					ready = append(ready, e)
				}
			}
			next := b.next
			w.recycle(b)
			b = next
		}
		w.n -= len(ready)
		w.mu.Unlock()
		// Check outside the lock: a check may Add.
		for _, e := range ready {
			if next := w.check(e.item, now); !next.IsZero() {
				w.mu.Lock()
				at := next.UnixNano()
				if at <= nowNs {
					at = nowNs + w.tick // never loop on an item within one Advance
				}
				w.add(e.item, at)
				w.mu.Unlock()
			}
		}
		clear(ready)
		if cap(ready) > 4096 && len(ready) < cap(ready)/4 {
			ready = nil // a spike has passed: let its buffer go
		}
		w.ready = ready[:0]
	}
}
