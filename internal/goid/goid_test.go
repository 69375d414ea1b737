package goid

import "testing"

func TestIDTellsGoroutinesApart(t *testing.T) {
	me := ID()
	if me == 0 || ID() != me {
		t.Fatalf("ID() = %d, then %d", me, ID())
	}
	other := make(chan uint64)
	go func() { other <- ID() }()
	if o := <-other; o == 0 || o == me {
		t.Fatalf("another goroutine's id %d, mine %d", o, me)
	}
}

func BenchmarkID(b *testing.B) {
	for b.Loop() {
		_ = ID()
	}
}
