package tio_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tiogo/tio"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/internal/browsertest"
	"github.com/tiogo/tio/stats"
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

// wssPage, served over HTTPS by the tio server itself, echoes one message
// over wss:// on the same origin and records what happened.
const wssPage = `<!doctype html><script>
window.result = null; window.closeInfo = null;
const ws = new WebSocket("wss://" + location.host + "/ws");
ws.onopen = () => ws.send("hello over wss");
ws.onmessage = e => { window.result = e.data; ws.close(1000, "done"); };
ws.onerror = () => { window.result = "error"; };
ws.onclose = e => { window.closeInfo = {clean: e.wasClean, code: e.code, reason: e.reason}; };
</script>`

// Chromium, trusting the test CA, loads a page over HTTPS from the tio
// server and talks wss:// to it on the same port.
func TestBrowserWSS(t *testing.T) {
	pki := tiotest.NewPKI(t)
	leaf := pki.Certificate()
	leaf.Certificate = append(leaf.Certificate, pki.CA.Raw) // the chain names the CA the browser trusts
	var page atomic.Int32
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithTLS(&tls.Config{Certificates: []tls.Certificate{leaf}}),
		tio.WithHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS != nil {
				page.Add(1)
			}
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, wssPage)
		})))
	ctx := browsertest.New(t, 60*time.Second, browsertest.TrustCertificate(pki.CA))
	if err := chromedp.Do(ctx, chromedp.Navigate("https://"+srv.Addr().String()+"/")); err != nil {
		t.Fatal(err)
	}
	var closed closeEvent
	tiotest.EventuallyWithin(t, 10*time.Second, "the page's echo and close", func() bool {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[*closeEvent](`window.closeInfo`))
		if err == nil && got != nil {
			closed = *got
		}
		return err == nil && got != nil
	})
	result, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.result`))
	if err != nil || result != "hello over wss" {
		t.Fatalf("the page got %q (%v)", result, err)
	}
	if !closed.Clean || closed.Code != 1000 {
		t.Fatalf("close as the browser saw it: %+v", closed)
	}
	if page.Load() == 0 {
		t.Fatal("the page was not served over TLS")
	}
	if s := srv.Stats().TLS; s.Handshakes < 2 || s.Failed != [stats.NumTLSFailures]uint64{} {
		t.Fatalf("TLS stats %+v", s)
	}
}
