// Package tlsconn is tio's TLS engine: crypto/tls driven by an event loop,
// with no goroutine per established connection — the server side, and the
// client side for package client (see "The client side" below).
//
// gnet has no TLS, and net/http-based servers pay for crypto/tls with a
// goroutine and a blocking net.Conn per connection. A [Session] instead takes
// the ciphertext a loop read ([Session.Input]), gives back plaintext for the
// connection's codec ([Session.Plaintext], [Session.Discard]), turns the
// codec's output into records ([Session.Write]) that the loop writes with
// the rest of its pass ([Session.WriteTo]), and queues close_notify on
// [Session.Close]. [Sniff] recognises a ClientHello among a connection's first
// bytes, so that one port serves TLS and cleartext protocols alike. An
// [Engine] holds what sessions share: the tls.Config and the handshake pool.
//
// # How crypto/tls is used
//
// Each session owns an ordinary *tls.Conn made by tls.Server over a
// transport, an in-memory net.Conn that is the session itself. Nothing of
// crypto/tls is reimplemented: handshakes, record protection, alerts, key
// updates and close_notify are its own. What the transport does with it:
//
//   - The handshake runs on a worker of a bounded pool (Options.MaxWorkers
//     goroutines, started on demand, exiting after Options.WorkerIdle idle),
//     because crypto/tls's handshake stores any error for good: it needs
//     reads that block until bytes arrive. A connection is queued only once
//     its whole ClientHello has arrived (the loop parses the record headers
//     and the hello's framing, which costs nothing and allocates nothing
//     while the bytes stay in the loop's buffer), so clients that say nothing
//     or trickle hold no worker. The handshake is bounded in time by the
//     deadline the caller passes, queueing included (a context deadline:
//     crypto/tls closes the transport when it passes, and a queued handshake
//     fails at once), and in memory (Options: MaxHelloBytes, MaxQueued,
//     MaxHandshakeBytes).
//   - Clients offering only old versions, malformed ClientHellos and
//     oversized ClientHello records are refused on the loop, before any
//     worker, with the alert crypto/tls would send.
//   - When the handshake ends the worker switches the session to loop mode
//     under the session's lock and then calls the wake function, so that the
//     loop runs a pass: bytes that arrived with the client's Finished (a TLS
//     1.3 client sends its first data without waiting) are decrypted then.
//     From then on only the loop touches the tls.Conn.
//   - On the loop, the transport's Read returns an error whose Temporary()
//     is true once the bytes passed to Input are used up: crypto/tls's record
//     layer does not store such an error, and the next Read resumes the
//     record (TestCryptoTLSRetriesTemporaryReadErrors fails if that changes;
//     net.Error.Temporary is deprecated). The transport's Write always
//     accepts, because crypto/tls keeps write errors for good; what bounds
//     the bytes queued for a peer is the server's outbound limit.
//   - The transport hands crypto/tls at most the rest of one record per
//     Read. Given more, crypto/tls reads ahead, and the tls.Conn's input
//     buffer, a bytes.Buffer that never shrinks, grows to hold several
//     records; fed one at a time it holds one, plus bytes.Buffer's doubling
//     slack (at most 32 KiB, 2 KiB for a connection that only ever receives
//     small records). The session keeps the rest.
//   - A KeyUpdate from the client is read inside Input, and crypto/tls
//     writes its answer from inside that Read: it comes out with the output.
//   - SetDeadline and its kind are no-ops (crypto/tls sets a write deadline
//     around close_notify); nothing the loop calls can block.
//
// # Memory
//
// Decrypted bytes go into a buffer from a shared pool, returned as soon as
// the codec has consumed them, and so does the output once the loop has
// written it: an idle session holds no buffer of its own, and its handshake
// state is dropped once the handshake is over. What remains is crypto/tls's:
// measured (TestIdleMemory, 2,000 sessions, heap after GC, Go 1.26, ECDSA
// P-256 certificate, X25519MLKEM768), about 6.7 KiB per idle session after
// small messages: the tls.Conn's input buffer (2 KiB: it grew to hold the
// 1.5 KiB post-quantum ClientHello) and handshake buffer (1.5 KiB), both
// bytes.Buffers that never shrink; the two AES-GCM states (1.75 KiB); the
// tls.Conn itself (872 bytes); key-export state (about 250 bytes); the
// Session (136 bytes). A connection that has received large records keeps an
// input buffer sized for them: 8 KiB after a 16 KiB message from a Go client
// (which starts with small records), up to 32 KiB for full-size records. A
// goroutine-per-connection crypto/tls server measured the same way costs
// about 13.4 KiB (the goroutine's stack, a read buffer). A handshake waiting
// for a worker costs about 3.6 KiB (the session and its ClientHello); one on
// a worker, waiting for the client's Finished, about 22 KiB (14 KiB of
// handshake state, the worker's 8 KiB stack).
//
// # Driving a session from gnet
//
// The server sniffs a connection's first bytes (Sniff before the codecs'
// sniffers), makes a Session with the connection's handshake deadline and
// gnet's Conn.Wake as the wake function, and from then on runs the codec on
// the session's plaintext instead of the socket's bytes:
//
//	// OnTraffic
//	raw, _ := c.Peek(-1)
//	taken := 0
//	for {
//		n, err := sess.Input(raw[taken:])
//		taken += n
//		m := decode(sess.Plaintext()) // the codec loop of today, on plaintext
//		sess.Discard(m)
//		if err != nil { close with a reason from err, after End }
//		if n == 0 || taken == len(raw) { break }
//	}
//	c.Discard(taken)
//	// End: encrypt what the pass queued, then one write
//	sess.Write(queued)
//	sess.WriteTo(c)
//	// closing: sess.Close(), then WriteTo(c) (close_notify), then close
//
// Everything queued for the peer counts toward its outbound limit as
// plaintext before Write; the records add 22 to 29 bytes each. Handshaking
// reports when the channel is not ready yet; the server's own handshake
// deadline should be the session's (a client that sends nothing wakes
// nothing: the server's timer closes it).
//
// # The client side
//
// [NewClientEngine] makes an engine without a configuration of its own, and
// [Engine.NewClientSession] a session over tls.Client with the
// configuration of the connection (its ServerName is the dialled host's).
// Everything else is the server side's: the handshake runs on the engine's
// pool from the start (the ClientHello goes out through the wake function
// and the output), bounded by the same deadline and byte limits, and the
// established session is driven by the loop with the same calls. A client
// that dials many connections at once queues their handshakes; the pool
// bounds the goroutines.
//
// # Errors
//
// Every way a connection ends has its sentinel (ErrMalformedHello,
// ErrHandshakeTimeout, ErrRenegotiation...), wrapping crypto/tls's error when
// there is one, so that the server can count close reasons. A peer's
// close_notify makes Input return io.EOF.
package tlsconn
