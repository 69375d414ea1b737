package tio_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/tiotest"
)

// noSniff is a codec that cannot recognise its connections.
type noSniff struct{}

func (noSniff) Name() string                                       { return "nosniff" }
func (noSniff) NewDecoder() codec.Decoder                          { return nil }
func (noSniff) Encode(dst []byte, _ *codec.Packet) ([]byte, error) { return dst, nil }

// Start returns an error naming what is wrong for a configuration that
// cannot work, instead of ignoring part of it.
func TestStartRejectsBadConfiguration(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []tio.Option
		want string
	}{
		{"a codec that cannot sniff among several", []tio.Option{tio.WithCodecs(tws.New(tws.Config{}), noSniff{})}, "codec.Sniffer"},
		{"limits for codecs that carry their own", []tio.Option{tio.WithCodecs(tws.New(tws.Config{})), tio.WithLimits(tio.Limits{MaxMessage: 1 << 10})}, "Limits.MaxMessage"},
		{"two options choosing the codecs", []tio.Option{tio.WithCodec(tbin.New(tbin.Config{})), tio.WithCodecs(tws.New(tws.Config{}))}, "both choose"},
		{"default codec configuration with codecs given", []tio.Option{tio.WithCodecs(tws.New(tws.Config{})), tio.WithWebSocket(tws.Config{})}, "WithWebSocket"},
		{"a limit set twice, differently", []tio.Option{tio.WithWebSocket(tws.Config{MaxMessage: 1 << 10}), tio.WithLimits(tio.Limits{MaxMessage: 2 << 10})}, "MaxMessage"},
		{"negative workers", []tio.Option{tio.WithWorkers(-1, 0)}, "WithWorkers"},
		{"a rate limit with no burst", []tio.Option{tio.WithRateLimit(5, 0, false)}, "burst"},
		{"negative event loops", []tio.Option{tio.WithEventLoops(-2)}, "WithEventLoops"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := tio.NewServer("127.0.0.1:0", echoMux(), c.opts...)
			err := srv.Start()
			if err == nil {
				defer srv.Shutdown(t.Context())
				t.Fatal("Start accepted it")
			}
			if !errors.Is(err, tio.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start = %v; want ErrConfig mentioning %q", err, c.want)
			}
		})
	}
}

// Configuring the default WebSocket codec keeps the binary protocol on the
// port and the Limits on the codec.
func TestWithWebSocketKeepsTheBinaryProtocolAndLimits(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithWebSocket(tws.Config{Mapping: tws.Raw{}}), tio.WithLimits(tio.Limits{MaxMessage: 1 << 10}))
	bc := tiotest.DialBinary(t, srv)
	bc.Send(3, []byte("still here"))
	if p := bc.Recv(); string(p.Body) != "still here" {
		t.Fatalf("binary echo %q", p.Body)
	}
	ws := dialWS(t, srv, "/")
	_ = ws.WriteMessage(websocket.BinaryMessage, []byte("raw"))
	if op, m, err := ws.ReadMessage(); err != nil || op != websocket.BinaryMessage || string(m) != "raw" {
		t.Fatalf("raw-mapped echo %d %q %v", op, m, err)
	}
	_ = ws.WriteMessage(websocket.BinaryMessage, make([]byte, 2<<10))
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("a message over Limits.MaxMessage: %v, want 1009", err)
	}
}
