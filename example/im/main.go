// Command im is tio's chat server: one port serves the chat page, its
// WebSocket, tio's binary protocol (go run ./example/im/cli) and Prometheus
// metrics. No external service is needed.
//
//	go run ./example/im                  # then open http://127.0.0.1:8080/
//	go run ./example/im -addr 0.0.0.0:8080 -admin-token s3cret
//
// Admins log in with the admin token (the page's login form has a field for
// it) and may kick users. Without -admin-token a random token is made and
// logged at startup. The protocol is in docs/im-protocol.md.
//
// Several servers make one chat (package cluster, over NATS): the first
// embeds a NATS server that the others join.
//
//	go run ./example/im -addr :8081 -cluster -nats-listen 127.0.0.1:4222   # node 1, embedding NATS
//	go run ./example/im -addr :8082 -nats nats://127.0.0.1:4222            # node 2, joining it
//
// -cluster starts a NATS server inside the process and makes the server a
// node (alone until -nats-listen lets others in); -nats-listen ADDR has that
// server listen on ADDR for other nodes, and implies -cluster; -nats URL
// joins the NATS server(s) at URL (comma-separated) instead of embedding
// one, and implies cluster mode (with -cluster too: -nats says where NATS
// is). -nats with -nats-listen is an error. -node names the node (default:
// the host's name and -addr's port); the names of a cluster's nodes must
// differ, and so must two nodes' -addr on one machine.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/example/im/imserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "TCP address to listen on (page, WebSocket, binary protocol and metrics)")
	adminToken := flag.String("admin-token", "", "token that makes a login an admin's, who may kick (empty: a random one, logged)")
	heartbeat := flag.Duration("heartbeat", 60*time.Second, "close connections silent for this long (clients ping every third of it)")
	clustered := flag.Bool("cluster", false, "be a node of a cluster: start a NATS server in this process (see -nats-listen, -nats)")
	natsListen := flag.String("nats-listen", "", "the embedded NATS server listens on this address for other nodes (implies -cluster)")
	natsURL := flag.String("nats", "", "join the NATS server(s) at this URL, comma-separated, instead of embedding one (implies -cluster)")
	nodeName := flag.String("node", "", "this node's name, unique in the cluster (default: host name and -addr's port)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *natsURL != "" && *natsListen != "" {
		fmt.Fprintln(os.Stderr, "im: -nats joins a NATS server and -nats-listen is the address of an embedded one: give one of them")
		os.Exit(2)
	}

	token := *adminToken
	if token == "" {
		token = rand.Text()
	}
	// The chat server's options, in one place.
	opts := []imserver.Option{
		imserver.WithLogger(logger),
		imserver.WithAdminToken(token),
		imserver.WithHeartbeat(*heartbeat),
	}
	var node *cluster.Node
	if *clustered || *natsListen != "" || *natsURL != "" {
		var err error
		node, err = cluster.New(cluster.Config{
			URL: *natsURL, Listen: *natsListen, NodeID: defaultName(*nodeName, *addr), Logger: logger,
		})
		if err != nil {
			logger.Error("im: cluster", "err", err)
			os.Exit(2)
		}
		opts = append(opts, imserver.WithCluster(node))
	}
	srv := imserver.New(*addr, opts...)
	if err := srv.Start(); err != nil {
		logger.Error("im: cannot start", "addr", *addr, "err", err)
		os.Exit(1)
	}
	at := srv.Addr().String()
	logger.Info("im: chat page", "url", "http://"+at+"/")
	logger.Info("im: WebSocket", "url", "ws://"+at+"/ws")
	logger.Info("im: binary protocol", "addr", at, "client", "go run ./example/im/cli -addr "+at+" -user NAME")
	logger.Info("im: Prometheus metrics", "url", "http://"+at+"/metrics")
	if node != nil {
		switch {
		case *natsURL != "":
			logger.Info("im: cluster node, joined NATS", "node", node.ID(), "nats", *natsURL)
		case node.ClientURL() != "":
			logger.Info("im: cluster node, embedding NATS", "node", node.ID())
			logger.Info("im: NATS for other nodes", "url", node.ClientURL(), "join", "-nats "+node.ClientURL())
		default:
			logger.Info("im: cluster node, embedding NATS in process only (-nats-listen ADDR lets other nodes join)", "node", node.ID())
		}
	}
	if *adminToken == "" {
		logger.Info("im: admin token (log in with it to kick; set it with -admin-token)", "token", token)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Error("im: shutdown", "err", err)
	}
}

// defaultName returns name, or the host's name and addr's port ("" for a
// random name, when addr's port is 0 or the host has no name).
func defaultName(name, addr string) string {
	if name != "" {
		return name
	}
	host, err := os.Hostname()
	_, port, perr := net.SplitHostPort(addr)
	if err != nil || perr != nil || host == "" || port == "" || port == "0" || len(host)+1+len(port) > cluster.MaxNodeID {
		return ""
	}
	return host + ":" + port
}
