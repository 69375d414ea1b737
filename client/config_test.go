package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/tiotest"
)

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []client.Option
	}{
		{"loops", []client.Option{client.WithEventLoops(0)}},
		{"workers", []client.Option{client.WithWorkers(0, 1)}},
		{"logger", []client.Option{client.WithLogger(nil)}},
		{"heartbeat", []client.Option{client.WithHeartbeat(time.Second, time.Second)}},
		{"multiplier", []client.Option{client.WithReconnect(client.Reconnect{Multiplier: 0.5})}},
		{"jitter", []client.Option{client.WithReconnect(client.Reconnect{Jitter: 2})}},
		{"max below initial", []client.Option{client.WithReconnect(client.Reconnect{Initial: time.Minute, Max: time.Second})}},
		{"attempts", []client.Option{client.WithReconnect(client.Reconnect{MaxAttempts: -1})}},
		{"queue over outbound", []client.Option{client.WithMaxOutbound(1 << 10), client.WithQueue(10, 1<<20)}},
		{"handshake timeout", []client.Option{client.WithHandshakeTimeout(0)}},
		{"h2", []client.Option{client.WithTLS(&tls.Config{NextProtos: []string{"h2", "http/1.1"}})}},
		{"TLS handshakes", []client.Option{client.WithTLSHandshakes(-1, 0)}},
	} {
		if _, err := client.New(nil, tc.opts...); !errors.Is(err, client.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
	c := newClient(t, nil)
	for _, url := range []string{
		"http://127.0.0.1:1/", "https://127.0.0.1:1/", "tio://127.0.0.1", "tio://127.0.0.1:1/path", "tios://127.0.0.1", "tls://127.0.0.1:1/x",
		"ws://user@127.0.0.1:1/", "ws://127.0.0.1:1/#frag", "ws://127.0.0.1:99999/", "ws:///x", "::",
	} {
		if _, err := c.Connect(url); !errors.Is(err, client.ErrConfig) {
			t.Errorf("Connect(%q): %v, want ErrConfig", url, err)
		}
	}
	if _, err := c.Connect("ws://127.0.0.1:1/", client.WithHeader(http.Header{"Upgrade": {"x"}})); !errors.Is(err, client.ErrConfig) {
		t.Errorf("a reserved header: %v", err)
	}
	if _, err := c.Connect("ws://127.0.0.1:1/", client.WithHeartbeat(time.Second, time.Second)); !errors.Is(err, client.ErrConfig) {
		t.Errorf("a bad option to Connect: %v", err)
	}
}

// TestDialContext: Dial gives up when its context ends, and closes the
// connection.
func TestDialContext(t *testing.T) {
	raw := newRawServer(t, func(r *rawServer, c net.Conn) { r.reads(c) }) // never answers
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Dial(ctx, "tio://"+raw.ln.Addr().String(), client.WithReconnect(client.Reconnect{}))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("Dial: %v after %v", err, time.Since(start))
	}
	tiotest.Eventually(t, "no connection left", func() bool { st := c.Stats(); return st.Conns == 0 && st.Open == 0 })
}

// TestNoGoroutinePerConnection: connections are served by event loops, and
// connections waiting to reconnect hold timers, not goroutines.
func TestNoGoroutinePerConnection(t *testing.T) {
	const n = 300
	srv := newRestartable(t, echoMux())
	c := newClient(t, nil)
	base := runtime.NumGoroutine()
	conns := make([]*client.Conn, n)
	for i := range conns {
		cn, err := c.Connect(srv.url(), client.WithReconnect(client.Reconnect{Initial: time.Hour}))
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = cn
	}
	tiotest.EventuallyWithin(t, 20*time.Second, "all connected", func() bool { return c.Stats().Connects == n })
	time.Sleep(50 * time.Millisecond) // the dialling goroutines end
	if g := runtime.NumGoroutine(); g > base+20 {
		t.Fatalf("%d goroutines for %d connections (%d before)", g, n, base)
	}
	srv.stop()
	tiotest.Eventually(t, "all waiting to reconnect", func() bool {
		for _, cn := range conns {
			if cn.State() != client.StateReconnecting {
				return false
			}
		}
		return true
	})
	time.Sleep(50 * time.Millisecond)
	if g := runtime.NumGoroutine(); g > base+20 {
		t.Fatalf("%d goroutines for %d connections waiting to reconnect (%d before)", g, n, base)
	}
}
