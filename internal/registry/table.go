package registry

import (
	"sync"
	"sync/atomic"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/link"
)

// table holds every attached channel, indexed by its slot (channel.Slot: the
// low bits of its id, unique among open channels). A server's slots are its
// connections' file descriptors, which the kernel keeps dense, so the table
// costs one pointer per descriptor: a third of what a map from id costs, and
// no rehash garbage as it grows. It is split in pages, so growing it never
// copies the channels' pointers, only the pages'.
//
// Lookups and iteration take no lock; stores are serialized by mu.
type table struct {
	mu    sync.Mutex
	pages atomic.Pointer[[]*tpage]
	n     atomic.Int64
}

const (
	pageBits = 10
	pageSize = 1 << pageBits
)

type tpage [pageSize]atomic.Pointer[channel.Channel]

// cell returns the cell of a slot, or nil if its page does not exist.
func (t *table) cell(slot int) *atomic.Pointer[channel.Channel] {
	pp := t.pages.Load()
	if pp == nil || slot>>pageBits >= len(*pp) {
		return nil
	}
	p := (*pp)[slot>>pageBits]
	if p == nil {
		return nil
	}
	return &p[slot&(pageSize-1)]
}

// put stores ch in its slot. A channel still in the slot is evicted (its
// remove then finds the slot taken and does nothing).
func (t *table) put(ch *channel.Channel) {
	slot := link.SlotOf(ch.ID())
	t.mu.Lock()
	defer t.mu.Unlock()
	pi := slot >> pageBits
	var pages []*tpage
	if pp := t.pages.Load(); pp != nil {
		pages = *pp
	}
	if pi >= len(pages) || pages[pi] == nil {
		grown := make([]*tpage, max(len(pages), pi+1, 2*len(pages)))
		copy(grown, pages)
		grown[pi] = new(tpage)
		t.pages.Store(&grown)
		pages = grown
	}
	if pages[pi][slot&(pageSize-1)].Swap(ch) == nil {
		t.n.Add(1)
	}
}

// remove empties ch's slot if ch holds it, and reports whether it did.
func (t *table) remove(ch *channel.Channel) bool {
	c := t.cell(link.SlotOf(ch.ID()))
	if c == nil || !c.CompareAndSwap(ch, nil) {
		return false
	}
	t.n.Add(-1)
	return true
}

// contains reports whether ch is attached.
func (t *table) contains(ch *channel.Channel) bool {
	c := t.cell(link.SlotOf(ch.ID()))
	return c != nil && c.Load() == ch
}

// get returns the attached channel with id, or nil.
func (t *table) get(id uint64) *channel.Channel {
	c := t.cell(link.SlotOf(id))
	if c == nil {
		return nil
	}
	if ch := c.Load(); ch != nil && ch.ID() == id {
		return ch
	}
	return nil
}

// each calls f for every attached channel, in slot order, until f returns
// false. Channels attached or detached meanwhile may or may not be seen.
func (t *table) each(f func(*channel.Channel) bool) {
	pp := t.pages.Load()
	if pp == nil {
		return
	}
	for _, p := range *pp {
		if p == nil {
			continue
		}
		for i := range p {
			if ch := p[i].Load(); ch != nil && !f(ch) {
				return
			}
		}
	}
}

// len returns the number of attached channels.
func (t *table) len() int { return int(t.n.Load()) }
