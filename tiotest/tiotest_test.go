package tiotest_test

import (
	"testing"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

func echo() handler.Handler {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	return mux
}

func TestKit(t *testing.T) {
	srv := tiotest.NewServer(t, echo())
	b := tiotest.DialBinary(t, srv)
	b.Send(7, []byte("hi"))
	if p := b.Recv(); p.Type != 7 || string(p.Body) != "hi" {
		t.Fatalf("binary echo %d %q", p.Type, p.Body)
	}
	w := tiotest.DialWebSocket(t, srv, "/x?y=1")
	w.SendBinary([]byte{7, 'h', 'o'})
	if op, m := w.Recv(); op != ws.OpBinary || string(m) != "\x07ho" {
		t.Fatalf("websocket echo %v %q", op, m)
	}
	w.SendText("text")
	if op, m := w.Recv(); op != ws.OpText || string(m) != "text" {
		t.Fatalf("websocket text echo %v %q", op, m)
	}
	tiotest.Eventually(t, "two connections", func() bool { return srv.Count(tio.All()) == 2 })
	if n, _ := srv.Close(tio.All(), channel.ReasonClosedByApp); n != 2 {
		t.Fatalf("closed %d", n)
	}
	if code := b.ExpectClose(); code != tbin.CloseNormal {
		t.Fatalf("binary close code %d", code)
	}
	if ce := w.ExpectClose(); ce.Code != ws.StatusNormalClosure {
		t.Fatalf("websocket close %+v", ce)
	}
	if _, err := tiotest.DialWebSocketErr(t, srv, "/", "Origin: http://elsewhere.example"); err == nil {
		t.Fatal("a cross-origin upgrade was not refused")
	}
}
