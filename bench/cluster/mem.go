//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec"
)

// measureMemory prints a server's resident memory per idle connection
// (each bound to a user and a group), alone and as a node of a cluster,
// and the memory a node gives each user of another node's presence.
func measureMemory(conns, users int) error {
	fmt.Printf("memory: %d idle binary-protocol connections, each bound to a user of its own and to a group; %s\n", conns, time.Now().Format(time.RFC3339))
	for _, sc := range []string{"single", "solo"} {
		srv, err := startProc("-mode=server", "-scenario="+sc)
		if err != nil {
			return err
		}
		var before, after serverStats
		if err := srv.stats(&before); err != nil {
			srv.kill()
			return err
		}
		cli, err := startProc("-mode=idle", "-addrs="+srv.addrs, fmt.Sprint("-conns=", conns))
		if err != nil {
			srv.kill()
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := srv.stats(&after); err != nil || after.Conns >= conns || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second) // the node's heartbeat has published them
		_ = srv.stats(&after)
		cli.kill()
		srv.kill()
		if after.Conns < conns {
			return fmt.Errorf("%s: %d connections of %d", sc, after.Conns, conns)
		}
		name := map[string]string{"single": "tio server", "solo": "cluster node"}[sc]
		fmt.Printf("%-13s RSS %6.0f B/conn   heap in use %6.0f B/conn   (presence users %d)\n", name,
			float64(after.RSS-before.RSS)/float64(conns), float64(after.HeapInuse-before.HeapInuse)/float64(conns), after.PresenceUsers)
	}
	return remotePresence(users)
}

// idle opens n binary-protocol connections to addrs (round robin) and
// holds them until stdin closes.
func idle(addrs []string, n int) error {
	var cs []net.Conn
	for i := range n {
		c, _, err := dialOne(addrs[i%len(addrs)], false)
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	fmt.Println("LISTEN ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range cs {
		c.Close()
	}
	return nil
}

type nopLocal struct{}

func (nopLocal) Send(tio.Target, *codec.Packet) (tio.SendResult, error) { return tio.SendResult{}, nil }
func (nopLocal) Close(tio.Target, channel.Reason, string) (int, error)  { return 0, nil }

// remotePresence measures the heap a node gives another node's users: a
// scripted node announces users users (in the format of docs/cluster.md).
func remotePresence(users int) error {
	node, err := cluster.New(cluster.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := node.Start(nopLocal{}); err != nil {
		return err
	}
	defer node.Stop(context.Background())
	nc, err := nats.Connect(node.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h0 := heap()
	seq, flags := uint64(0), byte(1) // the first update resets
	var b []byte
	begin := func() {
		seq++
		b = append(b[:0], 1, 1, 4, 'p', 'e', 'e', 'r') // version, update, origin "peer"
		b = binary.BigEndian.AppendUint64(b, 7)        // epoch
		b = binary.AppendUvarint(b, seq)
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(time.Hour/time.Millisecond)) // ttl
		flags = 0
	}
	begin()
	for i := range users {
		key := "user-" + strconv.Itoa(1000000+i) // 12 bytes
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
		b = binary.AppendUvarint(b, 1)
		if len(b) > 200<<10 {
			if err := nc.Publish("tio.presence", b); err != nil {
				return err
			}
			begin()
		}
	}
	if err := nc.Publish("tio.presence", b); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for node.Counts().Users < users && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := node.Counts().Users; got != users {
		return fmt.Errorf("presence holds %d users of %d (stats %+v)", got, users, node.Stats())
	}
	h1 := heap()
	fmt.Printf("presence of another node: %.0f B of heap per user (12-byte ids; %d users; charged to MaxPresenceBytes: %.0f B per user)\n",
		float64(h1-h0)/float64(users), users, float64(node.Stats().PresenceBytes)/float64(users))
	return nil
}
