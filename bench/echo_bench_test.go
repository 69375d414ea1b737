package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// The in-process benchmarks: a few blocking connections (one goroutine each)
// against each server started in this process on 127.0.0.1:0. They are quick
// checks for a change in tio's cost; the comparison that the docs report is
// bench/cmd/benchrun, with the servers in their own processes.
//
// From bench/ (the benchmarks' own module); TIO_BENCH_IMPLS=tio (ImplsEnv)
// runs tio's alone:
//
//	go test -bench . .

const benchConns = 4

// BenchmarkEcho measures round trips: one message in flight per connection.
func BenchmarkEcho(b *testing.B) {
	for _, impl := range Impls {
		for _, size := range []int{64, 4096} {
			b.Run(fmt.Sprintf("%s/%dB", impl, size), func(b *testing.B) {
				benchEcho(b, impl, size, 1)
			})
		}
	}
}

// BenchmarkEchoPipelined keeps 16 messages in flight per connection.
func BenchmarkEchoPipelined(b *testing.B) {
	for _, impl := range Impls {
		b.Run(impl+"/64B", func(b *testing.B) {
			benchEcho(b, impl, 64, 16)
		})
	}
}

// benchEcho sends b.N messages of size bytes over benchConns connections,
// inflight at a time on each (an op is one message echoed).
func benchEcho(b *testing.B, impl string, size, inflight int) {
	s := startT(b, impl)
	var cs []net.Conn
	for range benchConns {
		c, _ := dialT(b, s.Addr())
		cs = append(cs, c)
	}
	runEcho(b, cs, size, inflight)
}

// BenchmarkEchoTLS is BenchmarkEcho over TLS (StartTLS's servers, TLS 1.3,
// AES-128-GCM), 64-byte messages.
func BenchmarkEchoTLS(b *testing.B) {
	p, err := NewPKI()
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range TLSImpls {
		b.Run(impl+"/64B", func(b *testing.B) {
			if !Selected(impl) {
				b.Skipf("%s: not selected by %s", impl, ImplsEnv)
			}
			s, err := StartTLS(impl, "127.0.0.1:0", p.ServerConfig(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var cs []net.Conn
			for range benchConns {
				c, rest, err := DialWSS(s.Addr(), p.ClientConfig(), 5*time.Second)
				if err != nil || len(rest) > 0 {
					b.Fatalf("dial: %v (%d bytes after the upgrade)", err, len(rest))
				}
				defer c.Close()
				cs = append(cs, c)
			}
			runEcho(b, cs, 64, 1)
		})
	}
}

// runEcho sends b.N messages of size bytes over the connections cs,
// inflight at a time on each (an op is one message echoed).
func runEcho(b *testing.B, cs []net.Conn, size, inflight int) {
	payload := randomPayload(size)
	type conn struct {
		c     net.Conn
		r     *bufio.Reader
		burst []byte
	}
	conns := make([]conn, len(cs))
	for i, c := range cs {
		_ = c.SetDeadline(time.Time{})
		frame := AppendClientFrame(nil, 2, payload, [4]byte{byte(i), 7, 42, 99})
		conns[i] = conn{c, bufio.NewReader(c), bytes.Repeat(frame, inflight)}
	}
	frameLen := len(conns[0].burst) / inflight

	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for i, cn := range conns {
		n := b.N / len(conns)
		if i < b.N%len(conns) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for n > 0 {
				k := min(n, inflight)
				if _, err := cn.c.Write(cn.burst[:k*frameLen]); err != nil {
					errs <- err
					return
				}
				for range k {
					var (
						b0  byte
						p   []byte
						err error
					)
					b0, p, buf, err = ReadServerFrame(cn.r, buf)
					if err != nil {
						errs <- err
						return
					}
					if b0 != 0x82 || len(p) != size {
						errs <- fmt.Errorf("bad echo %#x, %d bytes", b0, len(p))
						return
					}
				}
				n -= k
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}
