// Package cluster makes tio servers on several machines one IM service:
// a send or close to a user, group, token, business id, IP or everyone
// reaches the matching connections on every node, and every node knows
// which users are online where (presence). It is t-io's cluster
// (TioClusterConfig: cluster4user, cluster4group, cluster4ip, cluster4all…)
// over NATS instead of a Redis topic.
//
//	node, err := cluster.New(cluster.Config{})                  // a NATS server embedded in this process
//	node, err := cluster.New(cluster.Config{Listen: ":4222"})   // …that other nodes can join
//	node, err := cluster.New(cluster.Config{URL: "nats://nats-1:4222,nats://nats-2:4222",
//		NATSOptions: []nats.Option{nats.UserCredentials("node.creds"), nats.RootCAs("ca.pem")}})
//	srv := tio.NewServer(addr, mux, node.Options()...)
//	srv.Serve() // starts the node; Shutdown stops it
//
// # Relay
//
// A Node implements tio.Relay. The server delivers each Send, SendWait
// and Close to its own connections and hands it to the node once; the
// node encodes it (docs/cluster.md: a version byte, the op, the origin
// node's id, the target's binary encoding, the packet's type and body or
// the close reason), queues it and returns — Publish never blocks, so an
// inline handler on an event loop may send — and one goroutine of the
// node publishes it on NATS, on the subject <prefix>.relay.<kind>
// ("tio.relay.user"). One publish per send, whatever the number of
// receivers: each node fans out to its own connections, encoding once.
// Every node subscribes to <prefix>.relay.* with one subscription, so
// the messages of one origin arrive in the order they were sent. A node
// never receives its own messages (it connects with nats.NoEcho, and drops
// a message carrying its own id), so nothing arrives twice or loops.
// Filters (tio.Exclude(sender)) run on the origin node only: other nodes
// deliver to every channel of the target. Config.Kinds switches kinds off.
// Node.OnReceive lets the application see each relayed send and close
// before its node delivers it, and deliver it itself: a chat server keeps
// the room messages of other nodes in its history, under the lock that
// orders its own.
//
// Delivery to other nodes is at most once, like NATS core's. While the
// connection to NATS is down, Publish fails fast with ErrUnavailable (the
// server returns it wrapped in tio.ErrRelay, after the local delivery);
// over Config.MaxOutbound queued bytes with ErrBackpressure; a message over
// the NATS server's max payload with ErrTooBig (messages are not chunked).
// What NATS delivers faster than a node's server takes is bounded by the
// subscriptions' pending limits (Config.PendingMsgs, PendingBytes); the
// excess is dropped and counted, like a slow WebSocket consumer's. A
// message of a newer format version is dropped and counted
// (Stats.NewerVersion).
//
// # Presence
//
// Presence comes from the server's bind hooks (Options installs them):
// a channel bound to tio.User(id) counts as one connection of id on this
// node. Each node publishes a heartbeat every Config.Heartbeat on
// <prefix>.presence carrying what changed since the last one (absolute
// counts per user, numbered so that a lost heartbeat is noticed), its full
// state when a node asks (a node that joins, reconnects or missed an
// update asks) and every ten minutes; every node keeps a replicated view of
// the others and answers Online, Presence, Nodes and Counts from memory,
// from any goroutine, without a network round trip. A node that stops says
// goodbye and is forgotten at once; one that dies is forgotten when its
// TTL (Config.TTL, 5 heartbeats by default) passes without a heartbeat.
//
// Heartbeats rather than JetStream KV: they need nothing but NATS core
// (no JetStream on the embedded server, none required of an external
// one), a bind costs a map update on this node and no request to NATS
// (so the hooks never wait on the network), liveness is the heartbeat
// itself (a KV entry of a dead node lingers until its own TTL), and
// cluster-wide counts are a lookup, where a KV bucket would have to be
// listed. The price is memory: every node holds every user's presence
// (about 100 bytes per user and node where the user is online, bounded by
// Config.MaxPresenceBytes), and presence lags by up to one heartbeat.
//
// # Rosters
//
// A roster is a named set of members — a chat room's users — that the
// application keeps on each node (Enter, Exit) and the cluster
// replicates like presence, on <prefix>.rosters: Roster lists the
// members on every node alive, InRoster asks about one, OnRosterChange
// tells of other nodes' changes. Changes go out at once (at most every
// Heartbeat/8), not at the next heartbeat; a node's rosters go with its
// presence (goodbye, restart, TTL), so a dead node leaves no ghosts.
//
// # Goroutines
//
// A node has two goroutines of its own (one publishes relayed messages,
// one sends heartbeats and roster changes and forgets dead nodes) and
// nats.go's (a reader, one per subscription for deliveries, one for
// connection events). The
// embedded server has its own. Everything a node holds hangs off it: many
// nodes run in one process, as the tests do.
package cluster
