// Package client is the client side of tio (t-io's ClientTioConfig and
// TioClient): it dials tio servers — or any RFC 6455 server — over
// WebSocket (ws://, wss://) or tio's binary protocol (tio://, tios://), in
// clear or over TLS, routes the packets they send to the
// same handlers as a server's (package handler), sends heartbeats and gives
// up on servers that stop answering, reconnects with backoff and jitter in
// one option, and waits for replies to requests (t-io's synSend: Call).
//
//	mux := handler.NewMux()
//	mux.Handle(msgChat, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { show(p.Body) }))
//	c, _ := client.New(mux,
//		client.WithReconnect(client.Reconnect{}), // 1 s, ×2, ≤ 30 s, jitter 0.5, forever
//		client.WithQueue(1000, 0),                 // sends wait while the connection is down
//		client.WithOnConnected(func(ch *channel.Channel, reconnect bool) { logIn(ch) }))
//	defer c.Shutdown(context.Background())
//	cn, err := c.Dial(ctx, "wss://chat.example/im?room=go") // or ws://, tio://host:port, tios://host:port
//	resp, err := cn.Call(ctx, &codec.Packet{Type: msgHistory, Body: query})
//
// # One client, many connections, few goroutines
//
// A Client holds any number of connections (Conn), served by a few gnet
// event loops (gnet.NewClient, Client.Start, Client.EnrollContext) — not a
// goroutine each. Each connection's state is an internal/link.Link, the
// very object a tio server drives for each of its connections (so the
// connection a handler sees is a *channel.Channel, as on a server), driven
// the way the server drives it: bytes are decoded on the loop, packets go
// to inline handlers or to per-connection queues on a bounded worker pool,
// and sends are coalesced into one write per pass. A goroutine per
// connection would cost its stack (8 KiB and up) and, with the usual
// blocking reader, a read buffer per connection; on event loops an idle
// WebSocket connection costs about 2.3 KB resident (its state and gnet's: a
// fifth of a gorilla/websocket client connection's, see docs/client.md),
// and one process holds tens of thousands of connections — a load
// generator, a gateway that speaks to many backends. The wire code is the codecs' own
// (codec/websocket and codec/binary in their client roles): no second copy
// of either protocol.
//
// What runs where. Dialling runs on the goroutine that calls Dial, or on a
// short-lived one (Connect, and each reconnect attempt, started by a
// timer): it lasts while the TCP connect does and ends when an event loop
// has taken the connection in; the handshake then goes on on the loop. A
// connection waiting to reconnect holds a runtime timer (time.AfterFunc),
// no goroutine. Heartbeats, handshake deadlines and dead-server detection
// ride on a timing wheel (internal/wheel) advanced by gnet's ticker.
// Handlers declared inline and the state hook run on event loops and must
// not block; other handlers and the OnConnected hook run on the worker
// pool. Blocking calls (Dial, Call, Shutdown) fail with ErrOnLoop on an
// event loop, where they would wait for themselves.
//
// # Reconnecting and the queue
//
// WithReconnect makes a lost connection come back: after a delay that
// starts at Reconnect.Initial and grows by Multiplier per failed attempt up
// to Max, each drawn at random in [d×(1−Jitter), d] so that the clients of
// a server that restarts do not all come back in the same instant. After
// MaxAttempts failed attempts in a row (0: never) the connection is closed
// with an error wrapping ErrGaveUp. A connection's State (connecting,
// connected, reconnecting, closed) is observable, with a hook on each
// change (WithOnStateChange).
//
// Each time a connection completes its handshake the OnConnected hook runs
// (reconnect false the first time, true after): the application logs in
// and joins its rooms there. Sends made while the connection is down fail
// at once with ErrNotConnected — or, with WithQueue, wait in a bounded
// queue (ErrQueueFull when it has no room) and go out after the next
// connect's OnConnected hook, in order; sends the hook itself makes go
// first. Nothing is dropped silently: sends still queued when the
// connection closes or gives up are counted (Stats().Discarded) and
// reported (ErrDiscarded in Close's result and in Err).
//
// # Heartbeats
//
// After WithHeartbeat's idle time without anything from the server, the
// client sends the protocol's heartbeat (the binary heartbeat byte, a
// WebSocket ping); tio servers answer binary heartbeats by default and
// every WebSocket server answers pings, so a live server is never taken for
// dead. A server that sends nothing for the timeout is: the connection is
// closed (reason heartbeat_timeout) and, with WithReconnect, dialled again.
// A server that accepts a connection and never answers its opening is
// abandoned after WithHandshakeTimeout.
//
// # Requests and replies
//
// Conn.Call sends a packet with a fresh correlation id (codec.Packet.ID) and
// waits for the reply with the same id, which a tio server sends with one
// call (ch.Reply(req, resp) in package channel). Replies are matched on the
// event loop before any handler sees them; a reply nobody waits for any
// more (its Call's context ended) is counted (Stats().UnmatchedReplies) and
// dropped, and a Call whose connection drops fails with ErrConnLost. On the
// wire: the binary protocol's request and reply tags (0xA5, 0xA6; see
// docs/binary-protocol.md), and under WebSocket's default TypePrefix
// mapping binary messages with a prefix of their own —
//
//	0xFE type:u8 id:u32 body…   a request (id ≠ 0, big-endian)
//	0xFF type:u8 id:u32 body…   the reply to the request with that id
//
// — so that under TypePrefix the packet types 0xFE and 0xFF are reserved
// (plain packets of those types cannot be sent), and requests carry types
// 0–255. The Raw mapping, and a text message, carry no id.
//
// # WebSocket
//
// A ws:// connection sends an RFC 6455 upgrade request (with WithHeader's
// fields and WithSubprotocols' offer), checks the server's answer (status
// 101, Upgrade, Connection, Sec-WebSocket-Accept, the subprotocol selected
// among those offered, no extension it did not offer; at most
// websocket.Config.MaxHandshake bytes), then reads frames that must not be
// masked, and masks every frame it sends with a fresh random key, as RFC
// 6455 requires of clients. Messages map to packets as on a server
// (websocket.Config.Mapping, TypePrefix by default: see WithWebSocket).
//
// permessage-deflate (RFC 7692) is offered with WithCompression, off by
// default: without context takeover (each message compressed on its own,
// no window kept between messages) or with it. The server's answer is
// checked parameter by parameter and an invalid one fails the handshake;
// messages over websocket.Compression.Threshold (256 bytes) are compressed,
// then masked; compressed messages from the server are inflated up to
// websocket.Config.MaxMessage and no further (close 1009 past it). The
// codec is the server's, in its client role.
//
// # TLS
//
// wss:// and tios:// (or tls://) connections speak TLS, with crypto/tls
// driven by the event loops as on a tio server (internal/tlsconn): records
// are sealed and opened in the connection's pass, with no goroutine per
// connection; only handshakes run on a bounded pool (WithTLSHandshakes).
// WithTLS gives the tls.Config (roots, client certificates, session cache;
// the server name defaults to the URL's host). A handshake that fails is
// an error wrapping ErrTLS and crypto/tls's.
package client
