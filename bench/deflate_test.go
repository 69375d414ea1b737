//go:build linux

package bench

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
)

// startDeflateT starts peer's server in this process, or skips the test if
// ImplsEnv leaves its implementation out.
func startDeflateT(t testing.TB, peer string) Server {
	t.Helper()
	if !Selected(PeerImpl(peer)) {
		t.Skipf("%s: not selected by %s", peer, ImplsEnv)
	}
	s, err := StartDeflate(peer, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("start %s: %v", peer, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The answers each peer gives the client's offer (DeflateOffer).
var wantAnswer = map[string]string{
	PeerTio:    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
	PeerTioCT:  "permessage-deflate; client_max_window_bits=12",
	PeerTioOff: "",
	PeerGws:    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
	PeerGwsCT:  "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
	PeerGwsOff: "",
}

func TestAppendJSON(t *testing.T) {
	for _, size := range []int{64, 100, 987, 1024, 4096} {
		for seed := range uint64(3) {
			b := AppendJSON([]byte("x"), size, seed)
			if len(b) != 1+size || !json.Valid(b[1:]) {
				t.Fatalf("size %d, seed %d: %d bytes, valid %v: %s", size, seed, len(b)-1, json.Valid(b[1:]), b)
			}
		}
	}
	m := AppendJSON(nil, 1024, 1)
	if z := len(compressMessage(m, 15)); z > 500 {
		t.Errorf("1 KiB of JSON compresses to %d bytes", z)
	}
}

// The receiving window of a connection whose server keeps its context:
// messages compressed against it inflate, and it keeps the last 2^bits
// bytes.
func TestFlateWindow(t *testing.T) {
	rx := newFlateRx(flateParams{on: true, serverTakeover: true, serverBits: 9})
	f := newInflater()
	var sent []byte
	for i := range uint64(5) {
		m := AppendJSON(nil, 300, i)
		// What a server with context would send: m compressed after the
		// window.
		z := compressWithDict(t, m, rx.dict())
		got, err := f.inflate(z, rx.dict())
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d: %v, %d bytes", i, err, len(got))
		}
		rx.push(got)
		sent = append(sent, m...)
		if d := rx.dict(); !bytes.Equal(d, sent[max(0, len(sent)-512):]) {
			t.Fatalf("message %d: window of %d bytes is not the last ones sent", i, len(d))
		}
	}
}

func TestDeflateSmoke(t *testing.T) {
	var ts []Target
	for _, peer := range []string{PeerTio, PeerTioCT, PeerTioOff, PeerGws, PeerGwsCT} {
		if Selected(PeerImpl(peer)) {
			ts = append(ts, Target{Name: peer, Addr: startDeflateT(t, peer).Addr()})
		}
	}
	if len(ts) == 0 {
		t.Skipf("%s selects no server", ImplsEnv)
	}
	compressed := func(peer string) bool { return wantAnswer[peer] != "" }

	t.Run("answers", func(t *testing.T) {
		for _, tg := range ts {
			c, _, p, err := dialWSDeflate(tg.Addr, 5*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", tg.Name, err)
			}
			c.Close()
			if p.answer != wantAnswer[tg.Name] || p.on != compressed(tg.Name) {
				t.Errorf("%s answered %q, want %q", tg.Name, p.answer, wantAnswer[tg.Name])
			}
		}
	})

	t.Run("fanout", func(t *testing.T) {
		res, err := CompareFanout(FanoutConfig{
			Targets: ts, Receivers: 20, Inflight: 4, Size: 1024,
			Warmup: 50 * time.Millisecond, Slice: 200 * time.Millisecond, Settle: 30 * time.Millisecond, Cycles: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			z := compressed(r.Impl)
			// Under the race detector on a loaded machine a slice may see
			// no broadcast sent or delivered (tio-ct compresses each for
			// every receiver): count the whole run's deliveries.
			if r.Impl != ts[i].Name || len(r.Slices) != 2 || r.Errors > 0 || r.Total == 0 || r.Lost > 0 ||
				(r.Samples > 0 && (r.P50 <= 0 || r.P99 < r.P50)) || r.Extensions != wantAnswer[r.Impl] ||
				(r.CompressedShare == 1) != z || (r.Inflated > 0) != z {
				t.Fatalf("result %d: %+v", i, r)
			}
			t.Logf("%s: %d deliveries, %.0f/s, p50 %.0f µs, p99 %.0f µs, %.0f B per delivery, %d inflated of %d",
				r.Impl, r.Msgs, r.Rate, r.P50, r.P99, r.WirePerMsg, r.Inflated, r.Total)
		}
	})

	t.Run("echo", func(t *testing.T) {
		for _, every := range []bool{false, true} {
			res, err := Compare(CompareConfig{
				Targets: ts, Conns: 4, Size: 1024, Inflight: 1, Deflate: true, InflateEvery: every,
				Warmup: 50 * time.Millisecond, Slice: 150 * time.Millisecond, Settle: 20 * time.Millisecond, Cycles: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Impl != ts[i].Name || len(r.Slices) != 2 || r.Errors > 0 || r.Msgs == 0 ||
					r.Extensions != wantAnswer[r.Impl] || (r.CompressedShare == 1) != compressed(r.Impl) {
					t.Fatalf("every %v, result %d: %+v", every, i, r)
				}
				t.Logf("every %v, %s: %d echoes, %.0f msg/s, %.0f B per echo", every, r.Impl, r.Msgs, r.Rate, r.WirePerMsg)
			}
		}
	})

	t.Run("idle", func(t *testing.T) {
		for _, tg := range ts {
			cs, answer, zipped, err := IdleDeflate(tg.Addr, 20, 1024)
			if err != nil {
				t.Fatalf("%s: %v", tg.Name, err)
			}
			want := 0
			if compressed(tg.Name) {
				want = 20
			}
			if n := Alive(cs); n != len(cs) || answer != wantAnswer[tg.Name] || zipped != want {
				t.Errorf("%s: %d of %d idle connections alive, answer %q, %d echoes compressed", tg.Name, n, len(cs), answer, zipped)
			}
			CloseAll(cs)
		}
	})
}

// compressWithDict compresses m after dict, as a server keeping its
// context does, into a permessage-deflate payload.
func compressWithDict(t *testing.T, m, dict []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriterDict(&buf, flate.BestSpeed, dict)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(m)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}
