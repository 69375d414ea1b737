// Package heartbeat finds idle connections without a goroutine or a timer per
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
package heartbeat

import (
	"sync"
	"time"
)

// Check examines an item whose scheduled time has come. It returns the next
// time to examine it, or the zero time to drop it from the wheel.
type Check[T any] func(item T, now time.Time) (next time.Time)

// Wheel schedules items of type T. Its methods are safe for concurrent use.
type Wheel[T any] struct {
	tick  int64 // slot width, nanoseconds
	check Check[T]

	mu    sync.Mutex
	slots [][]entry[T]
	next  int64 // the first tick (time/tick) not yet processed
	n     int   // items in the wheel
}

type entry[T any] struct {
	item T
	at   int64 // unix nanoseconds
}

// NewWheel returns a wheel of slots slots, each tick wide, that calls check.
// Items further away than slots×tick wait for their time in a later round.
func NewWheel[T any](tick time.Duration, slots int, check Check[T]) *Wheel[T] {
	if tick <= 0 {
		tick = 100 * time.Millisecond
	}
	slots = max(slots, 8)
	return &Wheel[T]{
		tick:  int64(tick),
		check: check,
		slots: make([][]entry[T], slots),
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

func (w *Wheel[T]) add(item T, at int64) {
	t := max(w.slotOf(at), w.next)
	s := &w.slots[t%int64(len(w.slots))]
	*s = append(*s, entry[T]{item, at})
	w.n++
}

// Advance examines every item whose time is at or before now. Call it
// regularly (every Tick) from one goroutine.
func (w *Wheel[T]) Advance(now time.Time) {
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
		due := w.slots[i]
		w.slots[i] = nil
		// Items of a later round stay where they are.
		keep := due[:0:0]
		var ready []entry[T]
		for _, e := range due {
			if w.slotOf(e.at) > t {
				keep = append(keep, e)
			} else {
				ready = append(ready, e)
			}
		}
		if len(keep) > 0 {
			w.slots[i] = keep
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
	}
}
