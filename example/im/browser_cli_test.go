package main

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiogo/tio/example/im/imcli"
	"github.com/tiogo/tio/example/im/imserver"
	"github.com/tiogo/tio/tiotest"
)

// termSays runs the terminal client in-process, as carol: what she types
// appears in the page, and what the page's user says appears on her
// terminal. Then it runs during, and returns once carol has quit.
func termSays(t *testing.T, srv *imserver.Server, p *page, during func()) {
	t.Helper()
	r, w := io.Pipe()
	out := &lockedBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- imcli.Run(ctx, imcli.Options{Addr: srv.Addr().String(), User: "carol"}, r, out) }()
	defer func() {
		_ = w.Close()
		if err := <-done; err != nil {
			t.Errorf("terminal client: %v", err)
		}
	}()
	see := func(s string) {
		t.Helper()
		tiotest.EventuallyWithin(t, 10*time.Second, "the terminal shows "+s, func() bool { return strings.Contains(out.String(), s) })
	}
	see("* in #lobby: alice, bob, carol")
	p.wait("carol in the online list", `[...document.querySelectorAll("#online .name")].some(e => e.textContent === "carol")`)
	if _, err := io.WriteString(w, "hi all, carol here, from a terminal\n"); err != nil {
		t.Fatal(err)
	}
	p.waitText("hi all, carol here, from a terminal")
	p.say("hello carol! the terminal works")
	see("<alice> hello carol! the terminal works")
	during()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
