package websocket_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/tiotest"
)

// nodePeer returns the node binary and the peer script, or skips the test
// when either node or the ws package is missing (npm ci in testdata/node
// installs it) — unless CI is set, where it fails.
func nodePeer(t *testing.T) (node, script string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (CI is set: the Node peer must run)", what)
		}
		t.Skip(what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "node"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		missing("the ws package is not installed: run npm ci in " + dir)
	}
	return node, filepath.Join(dir, "peer.js")
}

// Node's ws client, with its default offer (permessage-deflate;
// client_max_window_bits) and its own compression (messages from 1024
// bytes), against each compression mode: every echo comes back whole, and
// the server's answer is one ws accepts.
func TestNodeWS(t *testing.T) {
	node, script := nodePeer(t)
	for _, tc := range []struct {
		mode   websocket.CompressionMode
		answer string
	}{
		{websocket.CompressionOff, "extensions: \nnegotiated: none\n"},
		{websocket.CompressionNoContextTakeover, "extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\nnegotiated: permessage-deflate\n"},
		{websocket.CompressionContextTakeover, "extensions: permessage-deflate; client_max_window_bits=12\nnegotiated: permessage-deflate\n"},
	} {
		t.Run(fmt.Sprint("mode ", tc.mode), func(t *testing.T) {
			_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
				Mapping: websocket.Raw{}, Compression: websocket.Compression{Mode: tc.mode},
			})))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, node, script, "ws://"+addr+"/").CombinedOutput()
			if err != nil {
				t.Fatalf("node peer: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), tc.answer) || !strings.Contains(string(out), "echoed: 15 messages") {
				t.Fatalf("node peer said:\n%s", out)
			}
		})
	}
}

// Node's ws client over wss://, trusting the test CA: the TLS handshake on
// the event loop, then permessage-deflate and every echo, as in clear.
func TestNodeWSS(t *testing.T) {
	node, script := nodePeer(t)
	pki := tiotest.NewPKI(t)
	caFile, _, _ := pki.WriteFiles(t.TempDir(), pki.Certificate())
	srv, addr := startServer(t, echoMux(),
		tio.WithTLS(pki.ServerConfig()),
		tio.WithCodec(websocket.New(websocket.Config{
			Mapping: websocket.Raw{}, Compression: websocket.Compression{Mode: websocket.CompressionNoContextTakeover},
		})))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, script, "wss://"+addr+"/", caFile).CombinedOutput()
	if err != nil {
		t.Fatalf("node peer: %v\n%s", err, out)
	}
	want := "tls: TLSv1.3\nextensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\nnegotiated: permessage-deflate\n"
	if !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "echoed: 15 messages") {
		t.Fatalf("node peer said:\n%s", out)
	}
	if s := srv.Stats().TLS; s.Handshakes != 1 {
		t.Fatalf("TLS stats %+v", s)
	}
}
