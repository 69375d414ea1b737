package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// startT starts impl on a free port for the test, or skips the test if
// ImplsEnv leaves impl out.
func startT(t testing.TB, impl string) Server {
	t.Helper()
	if !Selected(impl) {
		t.Skipf("%s: not selected by %s", impl, ImplsEnv)
	}
	s, err := Start(impl, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("start %s: %v", impl, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dialT(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, rest, err := DialWS(addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d unexpected bytes after the handshake response", len(rest))
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

func expectFrame(t *testing.T, r *bufio.Reader, wantB0 byte, want []byte) {
	t.Helper()
	b0, p, _, err := ReadServerFrame(r, nil)
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if b0 != wantB0 || !bytes.Equal(p, want) {
		t.Fatalf("got frame %#x with %d bytes, want %#x with %d bytes", b0, len(p), wantB0, len(want))
	}
}

// TestEcho checks that every server echoes what the benchmark sends and a
// little more, so that the comparison compares correct echoes.
func TestEcho(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	for _, impl := range Impls {
		t.Run(impl, func(t *testing.T) {
			s := startT(t, impl)
			c, r := dialT(t, s.Addr())

			for _, n := range []int{1, 64, 125, 126, 4096, 65535, 65536, 200_000} {
				p := randomPayload(n)
				if _, err := c.Write(AppendClientFrame(nil, 2, p, mask)); err != nil {
					t.Fatal(err)
				}
				expectFrame(t, r, 0x82, p)
			}

			text := []byte("héllo, wörld")
			if _, err := c.Write(AppendClientFrame(nil, 1, text, mask)); err != nil {
				t.Fatal(err)
			}
			expectFrame(t, r, 0x81, text)

			// Pipelined, in one write, as scenario (c) sends them.
			p := randomPayload(64)
			frame := AppendClientFrame(nil, 2, p, mask)
			if _, err := c.Write(bytes.Repeat(frame, 16)); err != nil {
				t.Fatal(err)
			}
			for range 16 {
				expectFrame(t, r, 0x82, p)
			}

			// A frame split in pieces, with a 64-bit length.
			big := randomPayload(70_000)
			frame = AppendClientFrame(nil, 2, big, mask)
			for i := 0; i < len(frame); i += 9_000 {
				if _, err := c.Write(frame[i:min(i+9_000, len(frame))]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			expectFrame(t, r, 0x82, big)

			// Ping, then close.
			if _, err := c.Write(AppendClientFrame(nil, 9, []byte("ping"), mask)); err != nil {
				t.Fatal(err)
			}
			expectFrame(t, r, 0x8A, []byte("ping"))
			body := binary.BigEndian.AppendUint16(nil, 1000)
			if _, err := c.Write(AppendClientFrame(nil, 8, body, mask)); err != nil {
				t.Fatal(err)
			}
			expectFrame(t, r, 0x88, body)
		})
	}
}

// TestLoad runs the load client briefly against every server.
func TestLoad(t *testing.T) {
	for _, impl := range Impls {
		t.Run(impl, func(t *testing.T) {
			s := startT(t, impl)
			res, err := Load(LoadConfig{
				Addr: s.Addr(), Conns: 8, Size: 64, Inflight: 4,
				Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors > 0 {
				t.Fatalf("%d connections failed: %s", res.Errors, res.FirstError)
			}
			t.Logf("%s: %d echoes, %.0f msg/s", impl, res.Msgs, res.Rate)
		})
	}
}

// TestIdle opens idle connections and checks they stay open.
func TestIdle(t *testing.T) {
	for _, impl := range Impls {
		t.Run(impl, func(t *testing.T) {
			s := startT(t, impl)
			cs, err := Idle(s.Addr(), 100)
			if err != nil {
				t.Fatal(err)
			}
			defer CloseAll(cs)
			if n := Alive(cs); n != len(cs) {
				t.Fatalf("%d of %d idle connections alive", n, len(cs))
			}
		})
	}
}

func TestUnknownImpl(t *testing.T) {
	if _, err := Start("nope", "127.0.0.1:0", nil); err == nil {
		t.Fatal("Start accepted an unknown implementation")
	}
}

// TestCompare runs the interleaved comparison briefly against all servers
// (those that ImplsEnv selects).
func TestCompare(t *testing.T) {
	var ts []Target
	for _, impl := range Impls {
		if Selected(impl) {
			ts = append(ts, Target{Name: impl, Addr: startT(t, impl).Addr()})
		}
	}
	if len(ts) == 0 {
		t.Skipf("%s selects no server", ImplsEnv)
	}
	res, err := Compare(CompareConfig{
		Targets: ts, Conns: 4, Size: 64, Inflight: 2,
		Warmup: 50 * time.Millisecond, Slice: 100 * time.Millisecond, Settle: 20 * time.Millisecond, Cycles: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(ts) {
		t.Fatalf("%d results for %d targets", len(res), len(ts))
	}
	for i, r := range res {
		if r.Impl != ts[i].Name || len(r.Slices) != 2 || r.Errors > 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
		t.Logf("%s: %d echoes, %.0f msg/s", r.Impl, r.Msgs, r.Rate)
	}
}
