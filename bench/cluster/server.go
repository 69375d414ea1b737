//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/bench"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
)

// The protocol: every connection joins the group "room" and is bound to a
// user of its own ("u" and its channel id) when it connects; a packet of
// typeSend asks its server to send its body to the room (the sender
// excluded) as a packet of typeMsg.
const (
	typeSend = 1
	typeMsg  = 2
	room     = "room"
)

// serverStats is what a server process reports.
type serverStats struct {
	Published     uint64 `json:"published"` // relay messages handed to NATS, all nodes
	Failed        uint64 `json:"failed"`
	Received      uint64 `json:"received"` // relay messages delivered by the other nodes
	NATSInMsgs    int64  `json:"nats_in_msgs"`
	NATSOutMsgs   int64  `json:"nats_out_msgs"`
	NATSInBytes   int64  `json:"nats_in_bytes"`
	NATSOutBytes  int64  `json:"nats_out_bytes"`
	RSS           int64  `json:"rss"`
	HeapInuse     uint64 `json:"heap_inuse"`
	Conns         int    `json:"conns"`
	PresenceUsers int    `json:"presence_users"`
}

func newServer(opts ...tio.Option) (*tio.Server, error) {
	var srv *tio.Server
	mux := handler.NewMux()
	mux.Handle(typeSend, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_, _ = srv.Send(tio.Group(room), &codec.Packet{Type: typeMsg, Body: p.Body}, tio.Exclude(ch))
	}))
	opts = append(opts,
		tio.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		tio.WithOnConnect(func(ch *channel.Channel) {
			_ = srv.Bind(ch, tio.Group(room))
			_ = srv.Bind(ch, tio.User("u"+strconv.FormatUint(ch.ID(), 10)))
		}))
	srv = tio.NewServer("127.0.0.1:0", mux, opts...)
	return srv, srv.Start()
}

// serve runs a single server or a cluster of n nodes until stdin closes.
func serve(scenario string, n int) error {
	addrs, stats, stop, err := startServers(scenario, n)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Println("LISTEN", strings.Join(addrs, ","))
	waitStats(func() any { return stats() })
	return nil
}

// startServers starts a single server (single), a node on its own (solo)
// or n nodes on a NATS server (cluster), and returns their addresses, a
// function that reports their statistics, and one that stops them.
func startServers(scenario string, n int) ([]string, func() serverStats, func(), error) {
	var (
		srvs  []*tio.Server
		nodes []*cluster.Node
		ns    *server.Server
	)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range srvs {
			_ = s.Shutdown(ctx)
		}
		if ns != nil {
			ns.Shutdown()
		}
	}
	fail := func(err error) ([]string, func() serverStats, func(), error) {
		stop()
		return nil, nil, nil, err
	}
	warn := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch scenario {
	case "single":
		srv, err := newServer()
		if err != nil {
			return fail(err)
		}
		srvs = append(srvs, srv)
	case "cluster", "solo":
		if scenario == "solo" {
			n = 1
		}
		var err error
		if ns, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true}); err != nil {
			return fail(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			return fail(fmt.Errorf("nats server not ready"))
		}
		for i := range n {
			node, err := cluster.New(cluster.Config{URL: ns.ClientURL(), NodeID: fmt.Sprint("node-", i), Logger: warn})
			if err != nil {
				return fail(err)
			}
			srv, err := newServer(node.Options()...)
			if err != nil {
				return fail(err)
			}
			srvs, nodes = append(srvs, srv), append(nodes, node)
		}
	default:
		return fail(fmt.Errorf("unknown -scenario %q", scenario))
	}
	var addrs []string
	for _, s := range srvs {
		addrs = append(addrs, s.Addr().String())
	}
	stats := func() serverStats {
		var st serverStats
		for _, node := range nodes {
			s := node.Stats()
			st.Published += s.Published
			st.Failed += s.Failed
			st.Received += s.Received
		}
		if len(nodes) > 0 {
			st.PresenceUsers = nodes[0].Counts().Users
		}
		if ns != nil {
			if v, err := ns.Varz(nil); err == nil {
				st.NATSInMsgs, st.NATSOutMsgs, st.NATSInBytes, st.NATSOutBytes = v.InMsgs, v.OutMsgs, v.InBytes, v.OutBytes
			}
		}
		for _, s := range srvs {
			st.Conns += s.Count(tio.All())
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.HeapInuse = ms.HeapInuse
		st.RSS, _ = bench.ProcRSS(os.Getpid())
		return st
	}
	return addrs, stats, stop, nil
}
