package tlsconn

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkEcho echoes small messages (one record each way per op) through:
//
//   - session: a crypto/tls client and a Session driven as the event loop
//     drives it (Input, Plaintext, Write, AppendOutput), all on the
//     benchmark's goroutine, over an in-memory transport;
//   - tls-mem: a bare crypto/tls server on the same in-memory transport,
//     driven the same way (what the session's own layer costs);
//   - tls-pipe: a crypto/tls pair over net.Pipe, the server's echo on a
//     goroutine of its own (goroutine-per-connection crypto/tls);
//   - tls-tcp: the same over a TCP connection on 127.0.0.1.
//
// The session's ns/op over tls-pipe's and tls-tcp's is the ratio to report.
func BenchmarkEcho(b *testing.B) {
	p := pki(b)
	for _, size := range []int{64, 1024} {
		msg := make([]byte, size)
		buf := make([]byte, size)
		b.Run(fmt.Sprintf("session/%d", size), func(b *testing.B) {
			e := newEngine(b, p.serverConfig(), Options{})
			client, cc, d := establish(b, e, p.clientConfig())
			d.app = echo
			_ = client.SetDeadline(time.Time{})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				d.raw = append(d.raw, cc.take()...)
				d.pass()
				if _, err := io.ReadFull(client, buf); err != nil {
					b.Fatal(err)
				}
			}
			if d.err != nil {
				b.Fatal(d.err)
			}
		})
		b.Run(fmt.Sprintf("tls-mem/%d", size), func(b *testing.B) {
			pn := newPinned(b, tls.VersionTLS13)
			pn.handshake(b)
			_ = pn.client.SetDeadline(time.Time{})
			sbuf := make([]byte, 16<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := pn.client.Write(msg); err != nil { // reaches the server's conn at once
					b.Fatal(err)
				}
				for got := 0; got < size; {
					n, err := pn.server.Read(sbuf)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := pn.server.Write(sbuf[:n]); err != nil {
						b.Fatal(err)
					}
					got += n
				}
				if _, err := io.ReadFull(pn.client, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("tls-pipe/%d", size), func(b *testing.B) {
			c1, c2 := net.Pipe()
			benchGoroutineEcho(b, c1, c2, p, msg, buf)
		})
		b.Run(fmt.Sprintf("tls-tcp/%d", size), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
				close(accepted)
			}()
			c1, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
			if err != nil {
				b.Fatal(err)
			}
			c2, ok := <-accepted
			if !ok {
				b.Fatal("accept failed")
			}
			benchGoroutineEcho(b, c1, c2, p, msg, buf)
		})
	}
}

// benchGoroutineEcho echoes msg from a crypto/tls client on c1 to a
// crypto/tls server on c2 served by a goroutine of its own.
func benchGoroutineEcho(b *testing.B, c1, c2 net.Conn, p *testPKI, msg, buf []byte) {
	server := tls.Server(c2, p.serverConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sbuf := make([]byte, 16<<10)
		for {
			n, err := server.Read(sbuf)
			if err != nil {
				return
			}
			if _, err := server.Write(sbuf[:n]); err != nil {
				return
			}
		}
	}()
	client := tls.Client(c1, p.clientConfig())
	defer func() {
		_ = client.Close()
		_ = c2.Close()
		<-done
	}()
	if err := client.Handshake(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := client.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSessionDoesNotAllocate: in the steady state, a pass over a small
// record (Input, Plaintext, Discard, Write of the echo, WriteTo) allocates
// once, in crypto/tls (its readFromUntil's atLeastReader escapes; a
// goroutine-per-connection tls.Conn pays the same): the plaintext and output
// buffers come from a pool and go back.
func TestSessionDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	client, cc, d := establish(t, e, p.clientConfig())
	const runs = 200
	var records [][]byte
	for range runs + 1 {
		if _, err := client.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		records = append(records, cc.take())
	}
	s := d.s
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		rec := records[i]
		i++
		n, err := s.Input(rec)
		if err != nil || n != len(rec) {
			t.Fatalf("Input: %d, %v", n, err)
		}
		pt := s.Plaintext()
		if _, err := s.Write(pt); err != nil {
			t.Fatal(err)
		}
		s.Discard(len(pt))
		if _, err := s.WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations per pass, want 1 (crypto/tls's)", allocs)
	}
}

// BenchmarkServerSide isolates the server's work for one small record in
// and its echo out, with the client's records made beforehand (outside the
// timer): a Session driven as the loop drives it, against a bare tls.Conn
// reading from a conn that has the record and writing to one that discards.
func BenchmarkServerSide(b *testing.B) {
	p := pki(b)
	const size, batch = 64, 512
	msg := make([]byte, size)
	b.Run("session", func(b *testing.B) {
		e := newEngine(b, p.serverConfig(), Options{})
		client, cc, d := establish(b, e, p.clientConfig())
		s := d.s
		records := make([][]byte, 0, batch)
		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if len(records) == 0 {
				b.StopTimer()
				for range batch {
					_, _ = client.Write(msg)
					records = append(records, cc.take())
				}
				b.StartTimer()
			}
			rec := records[0]
			records = records[1:]
			if n, err := s.Input(rec); err != nil || n != len(rec) {
				b.Fatal(n, err)
			}
			pt := s.Plaintext()
			if _, err := s.Write(pt); err != nil {
				b.Fatal(err)
			}
			s.Discard(len(pt))
			if _, err := s.WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tls.Conn", func(b *testing.B) {
		pn := newPinned(b, tls.VersionTLS13)
		pn.handshake(b)
		pn.sc.out = func([]byte) {}
		var records [][]byte
		buf := make([]byte, 16<<10)
		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if len(records) == 0 {
				b.StopTimer()
				for range batch {
					records = append(records, pn.record(b, msg))
				}
				b.StartTimer()
			}
			pn.sc.push(records[0])
			records = records[1:]
			n, err := pn.server.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pn.server.Write(buf[:n]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
