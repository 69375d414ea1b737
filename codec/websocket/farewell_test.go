package websocket_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// expectCloseCode reads from a gorilla connection until it fails and
// requires a close frame with code.
func expectCloseCode(t *testing.T, c *gorilla.Conn, code int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *gorilla.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("got %v, want close %d", err, code)
		}
		return
	}
}

// TestShutdownFarewell: Shutdown says goodbye with 1001 on open connections
// and with 503 to a client still in the middle of its upgrade request.
func TestShutdownFarewell(t *testing.T) {
	srv, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{})))
	c := mustDial(t, nil, "ws://"+addr+"/", nil)
	roundTrip(t, c, gorilla.TextMessage, []byte("x"), gorilla.TextMessage, []byte("x"))
	rc := dialRaw(t, addr)
	rc.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	waitFor(t, "both connections open", func() bool { return srv.Count(tio.All()) == 2 })
	time.Sleep(20 * time.Millisecond) // let the partial request be read

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	expectCloseCode(t, c, gorilla.CloseGoingAway)
	resp, _ := rc.readResponse()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("mid-handshake client got %d, want 503", resp.StatusCode)
	}
	rc.expectClosed()
	if n := srv.Stats().Closed[channel.ReasonServerShutdown]; n != 2 {
		t.Fatalf("%d closes counted as server_shutdown, want 2", n)
	}
}

// TestHandlerFarewells: a handler's Close says goodbye with 1000, a handler
// panic with 1011; the packets a pool handler holds are copies, so it can
// echo large and fragmented messages after the loop has moved on.
func TestHandlerFarewells(t *testing.T) {
	mux := handler.NewMux()
	mux.Handle(websocket.TypeText, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		switch string(p.Body) {
		case "quit":
			ch.Close(channel.ReasonClosedByApp)
		case "panic":
			panic("handler bug")
		default:
			_ = ch.Send(p)
		}
	}))
	// Binary messages go to the worker pool.
	mux.Handle(websocket.TypeBinary, handler.HandlerFunc(func(ch *channel.Channel, p *codec.Packet) {
		time.Sleep(time.Millisecond)
		_ = ch.Send(p)
	}))
	srv, addr := startServer(t, mux, tio.WithCodec(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))

	c := mustDial(t, &gorilla.Dialer{WriteBufferSize: 4096}, "ws://"+addr+"/", nil)
	msgs := [][]byte{binaryOf(1 << 20), binaryOf(10), binaryOf(70000)}
	for _, m := range msgs {
		if err := c.WriteMessage(gorilla.BinaryMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		typ, got, err := c.ReadMessage()
		if err != nil || typ != gorilla.BinaryMessage || string(got) != string(m) {
			t.Fatalf("pool echo: type %d, %d bytes, %v; want %d bytes", typ, len(got), err, len(m))
		}
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("quit")); err != nil {
		t.Fatal(err)
	}
	expectCloseCode(t, c, gorilla.CloseNormalClosure)

	c = mustDial(t, nil, "ws://"+addr+"/", nil)
	if err := c.WriteMessage(gorilla.TextMessage, []byte("panic")); err != nil {
		t.Fatal(err)
	}
	expectCloseCode(t, c, gorilla.CloseInternalServerErr)
	waitFor(t, "panic counted", func() bool {
		s := srv.Stats()
		return s.HandlerPanics == 1 && s.Closed[channel.ReasonHandlerPanic] == 1 && s.Closed[channel.ReasonClosedByApp] == 1
	})
}
