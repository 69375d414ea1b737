package tio_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// When the server closes a WebSocket connection it sends its close frame
// with words (the reason's, or the application's), waits for the peer's
// answer, and only then closes TCP; a peer that never answers is closed
// after the close timeout. A close code the RFC leaves undefined is a
// protocol error, answered with 1002 and a reason.
func TestCleanCloses(t *testing.T) {
	// A kick, with the application's words, answered by gorilla (which
	// echoes the close): the server closes TCP after the answer, long
	// before its close timeout.
	patient := tiotest.NewServer(t, echoMux(), tio.WithCloseTimeout(time.Minute))
	g := dialWS(t, patient, "/")
	tiotest.Eventually(t, "connected", func() bool { return patient.Count(tio.All()) == 1 })
	if n, _ := patient.Close(tio.All(), channel.ReasonClosedByApp, tio.CloseText("kicked by an admin")); n != 1 {
		t.Fatalf("closed %d", n)
	}
	_, _, err := g.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "kicked by an admin" {
		t.Fatalf("close %v, want 1000 \"kicked by an admin\"", err)
	}
	// Eventually gives up long before the minute.
	tiotest.Eventually(t, "closed at the answer", func() bool { return patient.Count(tio.All()) == 0 })

	// A peer that never answers: closed after the close timeout.
	srv := tiotest.NewServer(t, echoMux(), tio.WithCloseTimeout(400*time.Millisecond))
	w := tiotest.DialWebSocket(t, srv, "/")
	tiotest.Eventually(t, "connected", func() bool { return srv.Count(tio.All()) == 1 })
	begin := time.Now()
	_, _ = srv.Close(tio.All(), channel.ReasonServerShutdown)
	head := make([]byte, 2)
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(w.Conn, head); err != nil || head[0] != 0x88 {
		t.Fatalf("no close frame: % x %v", head, err)
	}
	body := make([]byte, head[1])
	_, _ = io.ReadFull(w.Conn, body)
	if code, text := ws.ParseCloseFrameData(body); code != ws.StatusGoingAway || text != "server shutting down" {
		t.Fatalf("close %d %q", code, text)
	}
	tiotest.ExpectClosed(t, w.Conn) // without answering
	if d := time.Since(begin); d < 350*time.Millisecond || d > 5*time.Second {
		t.Fatalf("an unanswered close took %v, want about the 400 ms timeout", d)
	}

	// Undefined close codes: 1002 with a reason.
	for _, code := range []ws.StatusCode{5000, 65535, 1004, 1005, 1006, 1015} {
		c := tiotest.DialWebSocket(t, srv, "/")
		c.WriteMessage(ws.OpClose, ws.NewCloseFrameBody(code, ""))
		got := c.ExpectClose()
		if got.Code != ws.StatusProtocolError || !strings.Contains(got.Reason, "close code") {
			t.Fatalf("close code %d answered %+v, want 1002 with a reason", code, got)
		}
	}
}

// A peer that is still sending when the server closes goes on sending
// until it reads the close frame. The server skips what comes (holding
// none of it) until the peer's own close frame and only then closes TCP:
// closing at the first byte after its close frame would answer the rest
// with a TCP reset, which can destroy the close frame before the peer
// reads it. Through TLS as without.
func TestCloseWhileThePeerSends(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := tiotest.NewServer(t, handler.NewMux(), tio.WithCloseTimeout(time.Minute), tio.WithTLS(pki.ServerConfig()))
	payload := bytes.Repeat([]byte("x"), 1000)
	frame, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewTextFrame(payload)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		var c *tiotest.WSConn
		if i%2 == 0 {
			c = tiotest.DialWebSocket(t, srv, "/")
		} else {
			c = tiotest.DialWebSocketTLS(t, srv, pki.ClientConfig(), "/")
		}
		tiotest.Eventually(t, "connected", func() bool { return srv.Count(tio.All()) == 1 })
		stop, flood := make(chan struct{}), make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					flood <- nil
					return
				default:
				}
				if _, err := c.Conn.Write(frame); err != nil {
					flood <- err
					return
				}
			}
		}()
		time.Sleep(20 * time.Millisecond) // the flood under way
		if n, _ := srv.Close(tio.All(), channel.ReasonClosedByApp, tio.CloseText("kicked")); n != 1 {
			t.Fatalf("closed %d", n)
		}
		_ = c.SetReadDeadline(time.Now().Add(tiotest.Timeout))
		head := make([]byte, 2)
		if _, err := io.ReadFull(c.Conn, head); err != nil || head[0] != 0x88 {
			t.Fatalf("connection %d: no close frame: % x %v", i, head, err)
		}
		body := make([]byte, head[1])
		if _, err := io.ReadFull(c.Conn, body); err != nil {
			t.Fatalf("connection %d: close frame: %v", i, err)
		}
		if code, text := ws.ParseCloseFrameData(body); code != ws.StatusNormalClosure || text != "kicked" {
			t.Fatalf("connection %d: close %d %q", i, code, text)
		}
		time.Sleep(50 * time.Millisecond) // the peer has not read it yet: it goes on sending
		close(stop)
		if err := <-flood; err != nil {
			t.Fatalf("connection %d: the server stopped reading before the peer answered: %v", i, err)
		}
		c.WriteMessage(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		if rest := tiotest.ExpectClosed(t, c.Conn); len(rest) > 0 {
			t.Fatalf("connection %d: %d bytes after the close frame", i, len(rest))
		}
		tiotest.Eventually(t, "closed at the answer", func() bool { return srv.Count(tio.All()) == 0 })
	}
}
