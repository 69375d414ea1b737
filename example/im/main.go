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
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tiogo/tio/example/im/imserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "TCP address to listen on (page, WebSocket, binary protocol and metrics)")
	adminToken := flag.String("admin-token", "", "token that makes a login an admin's, who may kick (empty: a random one, logged)")
	heartbeat := flag.Duration("heartbeat", 60*time.Second, "close connections silent for this long (clients ping every third of it)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	token := *adminToken
	if token == "" {
		token = rand.Text()
	}
	// The chat server's options, in one place (a cluster adds its own here).
	opts := []imserver.Option{
		imserver.WithLogger(logger),
		imserver.WithAdminToken(token),
		imserver.WithHeartbeat(*heartbeat),
	}
	srv := imserver.New(*addr, opts...)
	if err := srv.Start(); err != nil {
		logger.Error("im: cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	at := srv.Addr().String()
	logger.Info("im: chat page", "url", "http://"+at+"/")
	logger.Info("im: WebSocket", "url", "ws://"+at+"/ws")
	logger.Info("im: binary protocol", "addr", at, "client", "go run ./example/im/cli -addr "+at+" -user NAME")
	logger.Info("im: Prometheus metrics", "url", "http://"+at+"/metrics")
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
