// Command autobahnclient is the Autobahn|Testsuite testee for tio's
// WebSocket client (the suite's fuzzingserver mode tests clients): it
// fetches /getCaseCount, runs every case — echoing each text and binary
// message back with its type until the server closes — and asks the
// server to write its reports (/updateReports). Start the suite first:
//
//	/tmp/autobahn/run.sh -server 9401 &
//	go run ./cmd/autobahnclient -url ws://127.0.0.1:9401 -agent tio-client
//
// (see /work/shared/autobahn/README.md). The client offers
// permessage-deflate as -compression says: "shared" (the default:
// client.WithCompression with websocket.CompressionNoContextTakeover, which
// the cases 12.* and 13.* need — the suite's server accepts some of its
// offers only from a client that offers client_no_context_takeover),
// "takeover" (websocket.CompressionContextTakeover), or "off".
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

func main() {
	base := flag.String("url", "ws://127.0.0.1:9401", "the fuzzingserver's URL")
	agent := flag.String("agent", "tio-client", "the agent name in the reports")
	only := flag.Int("case", 0, "run this case only (1-based; 0: all)")
	timeout := flag.Duration("timeout", 2*time.Minute, "longest time for one case")
	compression := flag.String("compression", "shared", "permessage-deflate offered: shared (no context takeover), takeover, or off")
	flag.Parse()
	var z websocket.Compression
	switch *compression {
	case "shared":
		z.Mode = websocket.CompressionNoContextTakeover
	case "takeover":
		z.Mode = websocket.CompressionContextTakeover
	case "off":
	default:
		fatal(fmt.Errorf("-compression %q: shared, takeover or off", *compression))
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	text := make(chan string, 1)
	mux := handler.NewMux()
	// Raw: text messages are TypeText packets, binary ones TypeBinary;
	// sending the packet back echoes the message with its type. The
	// handler only queues, so it runs inline on the event loop.
	var counting atomic.Bool
	counting.Store(true)
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		if counting.Load() {
			select {
			case text <- string(p.Body): // /getCaseCount's answer
			default:
			}
			return
		}
		_ = ch.Send(p)
	}))
	c, err := client.New(mux,
		client.WithLogger(logger),
		client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}, MaxMessage: 64 << 20}),
		client.WithCompression(z),
		client.WithMaxOutbound(256<<20), // the 9.* cases echo many 16 MiB messages
		client.WithHeartbeat(0, 0),
	)
	if err != nil {
		fatal(err)
	}
	defer c.Shutdown(context.Background())

	run := func(path string) error {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		cn, err := c.Dial(ctx, *base+path)
		if err != nil {
			return err
		}
		select {
		case <-cn.Done():
			return nil
		case <-ctx.Done():
			_ = cn.Close()
			return ctx.Err()
		}
	}
	if err := run("/getCaseCount"); err != nil {
		fatal(err)
	}
	n, err := strconv.Atoi(<-text)
	if err != nil {
		fatal(err)
	}
	counting.Store(false)
	start := time.Now()
	for i := 1; i <= n; i++ {
		if *only != 0 && i != *only {
			continue
		}
		if err := run(fmt.Sprintf("/runCase?case=%d&agent=%s", i, *agent)); err != nil {
			fmt.Fprintf(os.Stderr, "case %d: %v\n", i, err)
		}
		if i%50 == 0 {
			fmt.Fprintf(os.Stderr, "%d/%d cases, %v\n", i, n, time.Since(start).Round(time.Second))
		}
	}
	if err := run("/updateReports?agent=" + *agent); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "%d cases in %v\n", n, time.Since(start).Round(time.Second))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "autobahnclient:", err)
	os.Exit(1)
}
