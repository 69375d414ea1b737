package tio_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tiogo/tio"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/internal/browsertest"
	"github.com/tiogo/tio/tiotest"
)

// closePage opens n WebSockets to the tio server and records, for each,
// the close event Chromium reports.
const closePage = `<!doctype html><script>
window.closes = []; window.opened = 0;
for (let i = 0; i < %d; i++) {
  const ws = new WebSocket("ws://%s/");
  ws.onopen = () => window.opened++;
  ws.onclose = e => window.closes.push({clean: e.wasClean, code: e.code, reason: e.reason});
}
</script>`

// A browser sees the server's closes as clean — a heartbeat timeout, a
// shutdown, a kick with words — because the server waits for the
// browser's close frame before it closes TCP.
func TestBrowserSeesCleanCloses(t *testing.T) {
	ctx := browsertest.New(t, 60*time.Second)
	for _, c := range []struct {
		name   string
		opts   []tio.Option
		close  func(*tio.Server)
		code   int
		reason string
	}{
		{"heartbeat timeout", []tio.Option{tio.WithHeartbeat(700*time.Millisecond, nil)}, nil, 1008, "heartbeat timeout"},
		{"kick", nil, func(s *tio.Server) {
			_, _ = s.Close(tio.All(), 0, tio.CloseText("kicked by an admin"))
		}, 1000, "kicked by an admin"},
		{"shutdown", nil, func(s *tio.Server) {
			ctx, cancel := contextTimeout(5 * time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		}, 1001, "server shutting down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 8
			srv := tiotest.NewServer(t, echoMux(), append([]tio.Option{tio.WithWebSocket(tws.Config{Origins: []string{"*"}})}, c.opts...)...)
			page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, closePage, n, srv.Addr())
			}))
			defer page.Close()
			tab := browsertest.Tab(t, ctx)
			if err := chromedp.Do(tab, chromedp.Navigate(page.URL)); err != nil {
				t.Fatal(err)
			}
			tiotest.Eventually(t, "the page's connections open", func() bool {
				opened, err := chromedp.Run(tab, chromedp.Evaluate[int](`window.opened`))
				return err == nil && opened == n
			})
			if c.close != nil {
				c.close(srv)
			}
			var closes []closeEvent
			tiotest.EventuallyWithin(t, 10*time.Second, "every close seen by the page", func() bool {
				got, err := chromedp.Run(tab, chromedp.Evaluate[[]closeEvent](`window.closes`))
				closes = got
				return err == nil && len(closes) == n
			})
			for i, e := range closes {
				if !e.Clean || e.Code != c.code || e.Reason != c.reason {
					t.Fatalf("close %d as the browser saw it: %+v, want clean %d %q", i, e, c.code, c.reason)
				}
			}
		})
	}
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// closeEvent is what the page records of a CloseEvent.
type closeEvent struct {
	Clean  bool
	Code   int
	Reason string
}
