package tio_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/tiotest"
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
	srv := tiotest.NewServer(t, echoMux(), tio.WithCodecs(tws.New(tws.Config{}), tbin.New(tbin.Config{}), lines{}))

	lc := tiotest.Dial(t, srv)
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

	bc := tiotest.DialBinary(t, srv)
	bc.Send(tws.TypeText, []byte("from binary"))
	if p := bc.Recv(); p.Type != tws.TypeText || string(p.Body) != "from binary" {
		t.Fatalf("binary echo %d %q", p.Type, p.Body)
	}

	res, err := srv.Send(tio.All(), &codec.Packet{Type: tws.TypeText, Body: []byte("to all")})
	if err != nil || res != (tio.SendResult{OK: 3}) {
		t.Fatalf("SendToAll = %+v, %v", res, err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "to all\n" {
		t.Fatalf("line fan-out %q %v", got, err)
	}
	if op, m, err := ws.ReadMessage(); err != nil || op != websocket.TextMessage || string(m) != "to all" {
		t.Fatalf("ws fan-out %d %q %v", op, m, err)
	}
	if p := bc.Recv(); p.Type != tws.TypeText || string(p.Body) != "to all" {
		t.Fatalf("binary fan-out %d %q", p.Type, p.Body)
	}
}

// shouty is a line codec with two variants: a connection that starts with
// '!' instead of '#' gets variant 1, which shouts (upper case), and one that
// starts with '@' gets an encoder of its own, which numbers its lines.
type shouty struct {
	lines
	encodings *atomic.Int32 // shared encodings made (variants), for the test
}

func (shouty) Sniff(b []byte) codec.Match {
	if b[0] == '#' || b[0] == '!' || b[0] == '@' {
		return codec.Matched
	}
	return codec.NoMatch
}
func (s shouty) NewDecoder() codec.Decoder { return &shoutyDecoder{} }
func (shouty) NumVariants() int            { return 2 }
func (s shouty) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	return s.EncodeVariant(dst, p, 0)
}
func (s shouty) EncodeVariant(dst []byte, p *codec.Packet, v int) ([]byte, error) {
	s.encodings.Add(1)
	body := p.Body
	if v == 1 {
		body = bytes.ToUpper(body)
	}
	return append(append(dst, body...), '\n'), nil
}

type numbering struct{ n int }

func (e *numbering) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	e.n++
	return append(fmt.Appendf(dst, "%d:", e.n), append(p.Body, '\n')...), nil
}

type shoutyDecoder struct{ linesDecoder }

func (d *shoutyDecoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	if !d.started {
		switch in[0] {
		case '!':
			c.SetVariant(1)
		case '@':
			c.SetEncoder(new(numbering))
		}
	}
	return d.linesDecoder.Decode(c, in, p)
}

// A codec's variants are encoded once each per fan-out, whatever the number
// of receivers, and a connection with an encoder of its own gets its own
// encoding, in order.
func TestCodecVariantsEncodeOncePerVariant(t *testing.T) {
	var encodings atomic.Int32
	srv := tiotest.NewServer(t, echoMux(), tio.WithCodec(shouty{encodings: &encodings}))
	var readers []*bufio.Reader
	for _, first := range []string{"#", "#", "#", "!", "!", "@"} {
		c := tiotest.Dial(t, srv)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, first)
		readers = append(readers, bufio.NewReader(c))
	}
	tiotest.Eventually(t, "all connected", func() bool { return srv.Count(tio.All()) == 6 })
	for _, ch := range srv.Channels(tio.All()) {
		tiotest.Eventually(t, "ready", ch.IsReady)
	}
	encodings.Store(0)
	for range 2 {
		if res, err := srv.Send(tio.All(), &codec.Packet{Type: tws.TypeText, Body: []byte("hey")}); err != nil || res.OK != 6 {
			t.Fatalf("SendToAll = %+v, %v", res, err)
		}
	}
	if n := encodings.Load(); n != 4 {
		t.Fatalf("%d shared encodings for 2 fan-outs to 2 variants, want 4", n)
	}
	want := []string{"hey", "hey", "hey", "HEY", "HEY", "1:hey", "hey", "hey", "hey", "HEY", "HEY", "2:hey"}
	for i, r := range readers {
		for round := range 2 {
			got, err := r.ReadString('\n')
			if w := want[round*6+i]; err != nil || strings.TrimSuffix(got, "\n") != w {
				t.Fatalf("connection %d, round %d: %q %v, want %q", i, round, got, err, w)
			}
		}
	}
}
