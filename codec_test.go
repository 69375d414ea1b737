package tio_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
)

// lines is a user codec: connections that start with '#' speak
// newline-terminated lines, each a packet of type tws.TypeText. It is a
// value of a type that is not comparable (== on it would panic), which tio
// must cope with.
type lines struct{ _ []byte }

func (lines) Name() string { return "lines" }
func (lines) Sniff(b []byte) codec.Match {
	if b[0] == '#' {
		return codec.Matched
	}
	return codec.NoMatch
}
func (lines) NewDecoder() codec.Decoder { return &linesDecoder{} }
func (lines) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	return append(append(dst, p.Body...), '\n'), nil
}

type linesDecoder struct{ started bool }

func (d *linesDecoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	if !d.started {
		d.started = true
		c.Ready()
		return 1, false, nil
	}
	i := bytes.IndexByte(in, '\n')
	if i < 0 {
		if len(in) > 1024 {
			return 0, false, fmt.Errorf("lines: too long: %w", codec.ErrTooBig)
		}
		return 0, false, nil
	}
	p.Type, p.Body = tws.TypeText, in[:i]
	return i + 1, true, nil
}

// A user codec registered with WithCodecs is sniffed on the same port as
// WebSocket and the binary protocol, a text packet from any of them is
// encoded by each receiver's own codec, and a fan-out reaches all three.
func TestUserCodecSharesThePort(t *testing.T) {
	srv := start(t, echoMux(), tio.WithCodecs(tws.New(tws.Config{}), tbin.New(tbin.Config{}), lines{}))

	lc := dialRaw(t, srv)
	_ = lc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(lc, "#hello\nwor")
	fmt.Fprint(lc, "ld\n")
	r := bufio.NewReader(lc)
	for _, want := range []string{"hello", "world"} {
		got, err := r.ReadString('\n')
		if err != nil || strings.TrimSuffix(got, "\n") != want {
			t.Fatalf("line echo %q %v, want %q", got, err, want)
		}
	}

	ws := dialWS(t, srv, "/")
	_ = ws.WriteMessage(websocket.TextMessage, []byte("from ws"))
	if op, m, err := ws.ReadMessage(); err != nil || op != websocket.TextMessage || string(m) != "from ws" {
		t.Fatalf("ws echo %d %q %v", op, m, err)
	}

	bc := dialBinary(t, srv)
	bc.send(tws.TypeText, []byte("from binary"))
	if p := bc.recv(); p.Type != tws.TypeText || string(p.Body) != "from binary" {
		t.Fatalf("binary echo %d %q", p.Type, p.Body)
	}

	res, err := srv.SendToAll(&codec.Packet{Type: tws.TypeText, Body: []byte("to all")})
	if err != nil || res != (tio.SendResult{OK: 3}) {
		t.Fatalf("SendToAll = %+v, %v", res, err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "to all\n" {
		t.Fatalf("line fan-out %q %v", got, err)
	}
	if op, m, err := ws.ReadMessage(); err != nil || op != websocket.TextMessage || string(m) != "to all" {
		t.Fatalf("ws fan-out %d %q %v", op, m, err)
	}
	if p := bc.recv(); p.Type != tws.TypeText || string(p.Body) != "to all" {
		t.Fatalf("binary fan-out %d %q", p.Type, p.Body)
	}
}
