package tio_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/tiotest"
)

var panicOnConnect atomic.Bool

// syncBuffer is a log sink the server's goroutines write to while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// panicky is a line codec whose decoder panics on the line "boom".
type panicky struct{ lines }

func (panicky) Sniff(b []byte) codec.Match {
	if b[0] == '!' {
		return codec.Matched
	}
	return codec.NoMatch
}
func (panicky) NewDecoder() codec.Decoder { return &panickyDecoder{} }

type panickyDecoder struct{ linesDecoder }

func (d *panickyDecoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	if bytes.HasPrefix(in, []byte("boom\n")) {
		var seen []int
		seen[len(in)]++ // out of range: a real bug
	}
	return d.linesDecoder.Decode(c, in, p)
}

// A panic in a hook or a decoder closes one connection, not the process: a
// WebSocket handshake hook that indexes past the end of a path answers 500,
// a panicking connect hook closes with 1011, a panicking decoder closes its
// connection; each is counted, and the server goes on serving.
func TestPanicsInHooksAndDecodersCloseOneConnection(t *testing.T) {
	var logs syncBuffer
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		tio.WithCodecs(
			tws.New(tws.Config{OnHandshake: func(c codec.Conn, r *tws.Request) error {
				_ = strings.Split(r.Path, "/")[2] // panics for "/x"
				return nil
			}}),
			tbin.New(tbin.Config{}), panicky{}),
		tio.WithOnConnect(func(ch *channel.Channel) {
			if panicOnConnect.Load() {
				panic("connect hook bug")
			}
		}),
		tio.WithOnClose(func(*channel.Channel, channel.Reason, error) { panic("close hook bug") }),
	)
	// The handshake hook: HTTP 500, not a dead server.
	if _, err := tiotest.DialWebSocketErr(t, srv, "/x"); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("upgrade of /x = %v, want a 500", err)
	}
	// The connect hook: close 1011 after the upgrade.
	panicOnConnect.Store(true)
	w := tiotest.DialWebSocket(t, srv, "/a/b")
	if ce := w.ExpectClose(); ce.Code != ws.StatusInternalServerError {
		t.Fatalf("after a panicking connect hook: close %+v, want 1011", ce)
	}
	panicOnConnect.Store(false)
	// A decoder that panics: its connection closes.
	c := tiotest.Dial(t, srv)
	_, _ = c.Write([]byte("!hello\nboom\n"))
	tiotest.ExpectClosed(t, c)
	// And the server still serves (the close hook panics every time, too).
	b := tiotest.DialBinary(t, srv)
	b.Send(1, []byte("alive"))
	if p := b.Recv(); string(p.Body) != "alive" {
		t.Fatalf("echo after the panics: %q", p.Body)
	}
	tiotest.Eventually(t, "panics counted", func() bool {
		s := srv.Stats()
		return s.HandlerPanics >= 4 && s.Closed[channel.ReasonHandlerPanic] == 3
	})
	time.Sleep(10 * time.Millisecond)
	for _, want := range []string{"handshake hook panicked", "hook=OnConnected", "hook=OnClose", "index out of range"} {
		if !strings.Contains(logs.String(), want) && !(want == "handshake hook panicked" && strings.Contains(logs.String(), "codec or handshake hook panicked")) {
			t.Errorf("no %q in the log", want)
		}
	}
	if !strings.Contains(logs.String(), "stack=") {
		t.Error("panics logged without their stack")
	}
}

// brittle is a line codec whose encoder panics on the packet "boom".
type brittle struct{ lines }

func (brittle) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	if string(p.Body) == "boom" {
		var seen []int
		seen[len(p.Body)]++ // out of range: a real bug
	}
	return lines{}.Encode(dst, p)
}

// A panic in a codec's Encode fails that send with codec.ErrInternal and
// leaves the channel usable: a send encodes under the channel's lock, and a
// panic must not leave it held (the event loop would block on it for good,
// and every connection on that loop with it).
func TestEncoderPanicFailsOneSend(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithCodecs(brittle{}))
	c := tiotest.Dial(t, srv)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("#")); err != nil {
		t.Fatal(err)
	}
	// Counted from its accept on; ready once the loop has read "#" and
	// chosen the codec.
	tiotest.Eventually(t, "connected", func() bool {
		chs := srv.Channels(tio.All())
		return len(chs) == 1 && chs[0].IsReady()
	})
	ch := srv.Channels(tio.All())[0]
	for _, send := range []struct {
		name string
		f    func() error
	}{
		{"Send", func() error { return ch.Send(&codec.Packet{Type: tws.TypeText, Body: []byte("boom")}) }},
		{"a fan-out", func() error {
			_, err := srv.Send(tio.All(), &codec.Packet{Type: tws.TypeText, Body: []byte("boom")})
			return err
		}},
	} {
		err := send.f()
		if !errors.Is(err, codec.ErrInternal) || !strings.Contains(err.Error(), "Encode panicked") ||
			!strings.Contains(err.Error(), "panics_test.go") { // the stack
			t.Fatalf("%s: %v, want codec.ErrInternal with the panic's stack", send.name, err)
		}
	}
	// The channel's lock was released: the loop echoes, sends go out.
	if err := ch.Send(&codec.Packet{Type: tws.TypeText, Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "echo\n")
	r := bufio.NewReader(c)
	for _, want := range []string{"after", "echo"} {
		line, err := r.ReadString('\n')
		if err != nil || line != want+"\n" {
			t.Fatalf("read %q %v, want %q", line, err, want)
		}
	}
	if ch.Closed() {
		t.Fatal("the channel was closed")
	}
}
