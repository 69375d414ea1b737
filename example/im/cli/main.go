// Command cli is the terminal client of tio's chat example: it talks to
// go run ./example/im over tio's binary protocol (the same JSON commands
// as the page), joins rooms, chats with the browsers' users, and
// reconnects by itself.
//
//	go run ./example/im/cli -addr 127.0.0.1:8080 -user carol
//	go run ./example/im/cli -user carol -rooms lobby,dev
//
// Type a line to say it in the current room; /help lists the commands
// (/join, /dm, /who, /quit…).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tiogo/tio/example/im/imcli"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the chat server's address")
	user := flag.String("user", os.Getenv("USER"), "the name to log in as (letters, digits, _ - .)")
	rooms := flag.String("rooms", "lobby", "rooms to join, comma-separated; the first is the current room")
	token := flag.String("admin-token", "", "the admin token, to log in as an admin (who may /kick)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := imcli.Run(ctx, imcli.Options{Addr: *addr, User: *user, Token: *token, Rooms: strings.Split(*rooms, ",")}, os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		if errors.Is(err, imcli.ErrLogin) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
