package websocket

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// encodeInputs are messages for msgEncoder: empty, tiny, text, JSON,
// runs, random bytes, and mixtures, up to msgEncoderMax.
func encodeInputs() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	ins := [][]byte{
		nil, {0}, []byte("a"), []byte("ab"), []byte("aaaa"), []byte("aaaaa"),
		bytes.Repeat([]byte{'x'}, 1000), bytes.Repeat([]byte{0}, msgEncoderMax),
		[]byte(strings.Repeat("hello, world ", 100)),
		textOfInternal(5000), randomBytes(3000, 3), randomBytes(msgEncoderMax, 4),
	}
	for _, n := range []int{64, 256, 1024, 4096, 16384} {
		ins = append(ins, quotesJSON(n, uint64(n)), jsonKiB)
	}
	for range 50 {
		n := r.IntN(msgEncoderMax + 1)
		b := make([]byte, n)
		alpha := 1 + r.IntN(256)
		for i := range b {
			if i > 8 && r.IntN(4) == 0 {
				b[i] = b[i-1-r.IntN(8)]
			} else {
				b[i] = byte(r.IntN(alpha))
			}
		}
		ins = append(ins, b)
	}
	// Random stretches repeated: the first hit lands far into a repeat, the
	// match extends backwards past 258 bytes, and the input resumes
	// behind positions the table already holds.
	for _, n := range []int{300, 700, 1500, 2048} {
		a := randomBytes(n, uint64(n))
		ins = append(ins, bytes.Repeat(a, msgEncoderMax/n+1)[:msgEncoderMax])
	}
	// Skewed frequencies that need codes longer than 15 bits unlimited.
	var fib []byte
	a, c := 1, 1
	for s := 0; s < 24 && len(fib)+a <= msgEncoderMax; s++ {
		fib = append(fib, bytes.Repeat([]byte{byte('A' + s)}, a)...)
		a, c = c, a+c
	}
	r.Shuffle(len(fib), func(i, j int) { fib[i], fib[j] = fib[j], fib[i] })
	return append(ins, fib)
}

// TestMsgEncoder checks that what msgEncoder makes inflates, with
// compress/flate and with tio's inflater (checking the window), to the
// message, with and without a head, for each window.
func TestMsgEncoder(t *testing.T) {
	e := new(msgEncoder)
	for i, in := range encodeInputs() {
		for _, bits := range []int{15, 12, 8} {
			for _, split := range []int{0, min(3, len(in))} {
				out := e.encode([]byte{0xAA}, in[:split], in[split:], 1<<bits)
				if out[0] != 0xAA {
					t.Fatalf("input %d: dst's bytes overwritten", i)
				}
				z := append(out[1:len(out):len(out)], syncTail...)
				got, err := stdInflate(z, nil)
				if err != nil && !strings.Contains(err.Error(), "unexpected EOF") {
					t.Fatalf("input %d (%d bytes), window %d: compress/flate: %v", i, len(in), bits, err)
				}
				if !bytes.Equal(got, in) {
					t.Fatalf("input %d (%d bytes), window %d: compress/flate inflates %d bytes", i, len(in), bits, len(got))
				}
				f := new(inflater)
				f.reset()
				f.window = 1 << bits
				var o []byte
				if err := f.inflate(z, &o, nil, 1<<20); err != nil || !f.boundary() || !bytes.Equal(o, in) {
					t.Fatalf("input %d (%d bytes), window %d: inflater: %v, boundary %v, equal %v", i, len(in), bits, err, f.boundary(), bytes.Equal(o, in))
				}
			}
		}
	}
}

// TestHuffLengths checks that the code lengths make a complete code within
// the limit.
func TestHuffLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var work [2 * 286]uint32
	for i := range 2000 {
		n := 2 + r.IntN(285)
		freq := make([]uint32, n)
		for s := range freq {
			switch r.IntN(3) {
			case 0:
			case 1:
				freq[s] = 1 + r.Uint32N(10)
			default:
				freq[s] = 1 << r.IntN(17)
			}
		}
		freq[r.IntN(n)] = 1
		freq[r.IntN(n)] = 70000
		limit := 15
		if i%2 == 1 {
			limit = 7
			freq = freq[:min(n, 19)]
		}
		lens := make([]uint8, len(freq))
		var count [maxBits + 1]uint16
		huffLengths(freq, lens, limit, work[:], &count)
		if count != countLens(lens) && !(count[0] == 0 && false) {
			c := countLens(lens)
			c[0] = 0
			if c != count {
				t.Fatalf("case %d: count %v, lengths have %v", i, count, c)
			}
		}
		kraft, used := 0, 0
		for s, l := range lens {
			if (l == 0) != (freq[s] == 0) || int(l) > limit {
				t.Fatalf("symbol %d: freq %d, length %d (limit %d)", s, freq[s], l, limit)
			}
			if l > 0 {
				kraft += 1 << (limit - int(l))
				used++
			}
		}
		if used > 1 && kraft != 1<<limit {
			t.Fatalf("case %d: Kraft sum %d, want %d", i, kraft, 1<<limit)
		}
	}
}

// FuzzMsgEncoder checks that msgEncoder's output inflates to its input,
// for every window, with compress/flate and with tio's inflater.
func FuzzMsgEncoder(f *testing.F) {
	for _, in := range encodeInputs()[:20] {
		f.Add(in, uint8(15))
	}
	e := new(msgEncoder)
	f.Fuzz(func(t *testing.T, in []byte, bits uint8) {
		if len(in) > msgEncoderMax {
			in = in[:msgEncoderMax]
		}
		bits = 8 + bits%8
		split := len(in) / 3
		z := append(e.encode(nil, in[:split], in[split:], 1<<bits), syncTail...)
		got, err := stdInflate(z, nil)
		if (err != nil && !strings.Contains(err.Error(), "unexpected EOF")) || !bytes.Equal(got, in) {
			t.Fatalf("compress/flate: %v, %d bytes of %d", err, len(got), len(in))
		}
		inf := new(inflater)
		inf.reset()
		inf.window = 1 << bits
		var o []byte
		if err := inf.inflate(z, &o, nil, 1<<20); err != nil || !inf.boundary() || !bytes.Equal(o, in) {
			t.Fatalf("inflater: %v, boundary %v, %d bytes of %d", err, inf.boundary(), len(o), len(in))
		}
	})
}

// TestMsgEncoderRepeats: stretches of random bytes repeated from random
// offsets, where a match extended backwards and cut at 258 bytes ends
// before positions the hash table already holds (which made a negative
// distance before the encoder checked for one; Autobahn 12.*.5 found it).
func TestMsgEncoderRepeats(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	e := new(msgEncoder)
	f := new(inflater)
	for i := range 3000 {
		a := randomBytes(300+r.IntN(3000), uint64(i))
		m := make([]byte, 0, msgEncoderMax)
		for len(m) < msgEncoderMax {
			m = append(m, a[r.IntN(len(a)):]...)
			if r.IntN(2) == 0 {
				m = append(m, randomBytes(r.IntN(600), uint64(i+7))...)
			}
		}
		m = m[:msgEncoderMax]
		z := append(e.encode(nil, nil, m, 1<<15), syncTail...)
		f.reset()
		var o []byte
		if err := f.inflate(z, &o, nil, 1<<20); err != nil || !f.boundary() || !bytes.Equal(o, m) {
			t.Fatalf("case %d: %v, boundary %v, equal %v", i, err, f.boundary(), bytes.Equal(o, m))
		}
	}
}

// FuzzMsgEncoderCopies builds messages the way LZ77 sees them: the input is
// a program whose instructions append literal bytes or copy earlier bytes
// from any distance with any length (overlapping copies included), so the
// fuzzer reaches long matches, matches cut at 258 bytes, distances at and
// past the window, and repeats nested in repeats far more often than by
// mutating bytes. What msgEncoder makes must inflate to the message with
// compress/flate and with tio's inflater, which enforces the window.
func FuzzMsgEncoderCopies(f *testing.F) {
	f.Add([]byte{0x05, 'h', 'e', 'l', 'l', 'o', 0x80 | 4, 5, 0, 0x80 | 100, 1, 0}, uint8(15))
	f.Add([]byte{0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 0xFF, 0x0F, 0xFF, 0x01, 0x01}, uint8(8))
	f.Add(bytes.Repeat([]byte{0x03, 'a', 'b', 'c', 0xC1, 0x20, 0x01}, 40), uint8(12))
	e := new(msgEncoder)
	inf := new(inflater)
	f.Fuzz(func(t *testing.T, prog []byte, bits uint8) {
		bits = 8 + bits%8
		var m []byte
		for len(prog) > 0 && len(m) < msgEncoderMax {
			op := prog[0]
			prog = prog[1:]
			if op&0x80 == 0 {
				// Literals: the next op&0x7F bytes.
				n := min(int(op&0x7F), len(prog))
				m = append(m, prog[:n]...)
				prog = prog[n:]
				continue
			}
			// A copy: length from op's low 7 bits (times 4 with the next
			// byte's top bit), distance from two more bytes.
			if len(prog) < 2 || len(m) == 0 {
				break
			}
			n := 3 + int(op&0x7F)
			if prog[0]&0x80 != 0 {
				n *= 4
			}
			d := 1 + (int(prog[0]&0x7F)<<8|int(prog[1]))%len(m)
			prog = prog[2:]
			for range n {
				m = append(m, m[len(m)-d])
			}
		}
		m = m[:min(len(m), msgEncoderMax)]
		z := append(e.encode(nil, nil, m, 1<<bits), syncTail...)
		got, err := stdInflate(z, nil)
		if (err != nil && !strings.Contains(err.Error(), "unexpected EOF")) || !bytes.Equal(got, m) {
			t.Fatalf("compress/flate: %v, %d bytes of %d", err, len(got), len(m))
		}
		inf.reset()
		inf.window = 1 << bits
		var o []byte
		if err := inf.inflate(z, &o, nil, 1<<20); err != nil || !inf.boundary() || !bytes.Equal(o, m) {
			t.Fatalf("inflater: %v, boundary %v, %d bytes of %d", err, inf.boundary(), len(o), len(m))
		}
	})
}
