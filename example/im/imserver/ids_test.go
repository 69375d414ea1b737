package imserver

import (
	"slices"
	"testing"
	"time"
)

// Ids carry the node's tag in their low bits and increase, a unit a
// message even within one clock unit; ids seen from other nodes move the
// units past theirs, unless they are more than a minute ahead.
func TestIDs(t *testing.T) {
	now := time.Now()
	g := idGen{tag: 300}
	var last uint64
	for range 1000 {
		id := g.next(now) // one instant: the units run ahead
		if id&(1<<tagBits-1) != 300 || id <= last || id >= 1<<53 {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id
	}
	other := (last>>tagBits+50)<<tagBits | 7 // another node's, 50 units on
	g.observe(other, now)
	if id := g.next(now); id <= other {
		t.Fatalf("id %d not after the observed %d", id, other)
	}
	far := (uint64(now.Add(time.Hour).UnixMicro())>>unitBits)<<tagBits | 7
	before := g.next(now)
	g.observe(far, now)
	if id := g.next(now); id >= far || id != before+1<<tagBits {
		t.Fatalf("an id an hour ahead moved the clock: %d", id)
	}
	if nodeTag("a") != 300 || nodeTag("b") != 485 || nodeTag("a") >= 1<<tagBits {
		t.Fatal("tags: FNV-1a of the name, modulo 1,024")
	}
}

// A room's history is kept in id order, without duplicates, the newest
// max: another node's message may be older than the last one here.
func TestKeep(t *testing.T) {
	var r room
	for _, id := range []uint64{10, 30, 20, 30, 5, 40, 1} {
		r.keep(id, nil, 4)
	}
	var ids []uint64
	for _, m := range r.history {
		ids = append(ids, m.id)
	}
	if want := []uint64{10, 20, 30, 40}; !slices.Equal(ids, want) {
		t.Fatalf("history %v, want %v", ids, want)
	}
}
