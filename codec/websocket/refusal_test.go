package websocket

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
)

// countHandler counts the records it is given and keeps the last.
type countHandler struct {
	n    atomic.Int64
	last slog.Record
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	h.last = r
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestRefusalLogBounded: the refusal log logs each origin once, at most
// refusalBurst lines at once and one per refusalEvery after, and its memory
// of what it logged stays at refusalMemory entries.
func TestRefusalLogBounded(t *testing.T) {
	var r refusals
	h := &countHandler{}
	l := slog.New(h)
	origin := func(i int) []byte { return fmt.Appendf(nil, "https://o%d.example", i) }

	for i := range 1000 {
		r.report(l, refusedOrigin, origin(i), nil)
	}
	if n := h.n.Load(); n != refusalBurst {
		t.Fatalf("1000 origins at once: %d lines, want %d", n, refusalBurst)
	}
	// Two periods later, two more lines; the first says how many were not
	// logged.
	r.last = r.last.Add(-2 * refusalEvery)
	r.report(l, refusedOrigin, origin(0), nil) // logged already: no line, no token
	r.report(l, refusedOrigin, origin(2000), nil)
	var notLogged uint64
	h.last.Attrs(func(a slog.Attr) bool {
		if a.Key == "not_logged" {
			notLogged = a.Value.Uint64()
		}
		return true
	})
	if n := h.n.Load(); n != refusalBurst+1 || notLogged != 1000-refusalBurst {
		t.Fatalf("after two periods: %d lines (not_logged %d), want %d (%d)", n, notLogged, refusalBurst+1, 1000-refusalBurst)
	}
	r.report(l, refusedOrigin, origin(2001), nil)
	r.report(l, refusedOrigin, origin(2002), nil)
	if n := h.n.Load(); n != refusalBurst+2 {
		t.Fatalf("after two periods and three new origins: %d lines, want %d", n, refusalBurst+2)
	}

	// The memory: many origins, the rate limit lifted for the test.
	r, h.n = refusals{}, atomic.Int64{}
	for i := range 10 * refusalMemory {
		r.tokens = refusalBurst
		r.report(l, refusedOrigin, origin(i), nil)
	}
	if len(r.seen) != refusalMemory || len(r.ring) != refusalMemory || h.n.Load() != 10*refusalMemory {
		t.Fatalf("remembers %d (ring %d) after %d lines; want %d", len(r.seen), len(r.ring), h.n.Load(), refusalMemory)
	}
	r.tokens = refusalBurst
	r.report(l, refusedOrigin, origin(10*refusalMemory-1), nil) // remembered
	r.report(l, refusedHost, origin(10*refusalMemory-1), nil)   // another kind
	r.report(l, refusedOrigin, origin(0), nil)                  // forgotten
	if n := h.n.Load(); n != 10*refusalMemory+2 {
		t.Fatalf("%d lines, want %d", n, 10*refusalMemory+2)
	}
}
