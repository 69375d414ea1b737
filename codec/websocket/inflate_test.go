package websocket

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
)

// inflateAll inflates in, fed in pieces of the sizes next returns (next nil:
// at once), with hist before it, and reports the output, the error, and
// whether the stream stopped at a block boundary.
func inflateAll(in, hist []byte, limit int, next func() int) ([]byte, error, bool) {
	f := new(inflater)
	f.reset()
	var out []byte
	for len(in) > 0 {
		n := len(in)
		if next != nil {
			n = min(max(next(), 1), len(in))
		}
		if err := f.inflate(in[:n], &out, hist, limit); err != nil {
			return out, err, false
		}
		in = in[n:]
	}
	return out, nil, f.boundary()
}

// stdInflate is the reference: compress/flate, with hist as a dictionary.
func stdInflate(in, hist []byte) ([]byte, error) {
	r := stdflate.NewReaderDict(bytes.NewReader(in), hist)
	return io.ReadAll(r)
}

// inflateInputs are valid and broken DEFLATE streams.
func inflateInputs(t testing.TB) [][]byte {
	var ins [][]byte
	texts := [][]byte{
		nil,
		[]byte("a"),
		[]byte("hello, hello, hello world"),
		textOfInternal(5000),
		bytes.Repeat([]byte{0}, 100000),
		randomBytes(70000, 1),
		[]byte(strings.Repeat(`{"id":1,"name":"x","tags":["a","b"]},`, 300)),
	}
	for _, text := range texts {
		for _, level := range []int{stdflate.NoCompression, stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression, stdflate.HuffmanOnly} {
			var b bytes.Buffer
			w, _ := stdflate.NewWriter(&b, level)
			w.Write(text)
			w.Close()
			ins = append(ins, b.Bytes())
			b.Reset()
			w.Reset(&b)
			w.Write(text)
			w.Flush() // a sync flush: not final
			ins = append(ins, b.Bytes())
		}
	}
	// Hand-made: a final stored block, a fixed block, bad block type,
	// bad stored length, a distance too far, an over-subscribed code.
	ins = append(ins,
		[]byte{0x01, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'},
		[]byte{0x01, 0x03, 0x00, 0xfc, 0xfe, 'a', 'b', 'c'},
		[]byte{0x07},
		[]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00},
		[]byte{0x63, 0x18, 0x05},
		[]byte{0x05, 0xc0, 0x81, 0x08, 0x00, 0x00, 0x00, 0x00, 0x20, 0x7f, 0xeb, 0x0b, 0x00, 0x00},
	)
	return ins
}

func textOfInternal(n int) []byte {
	const unit = "añ😀z lorem ipsum "
	b := []byte(strings.Repeat(unit, n/len(unit)+1))
	return b[:n]
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkInflate compares the inflater with compress/flate on in, whole and
// split.
func checkInflate(t *testing.T, in, hist []byte, sizes []byte) {
	t.Helper()
	want, wantErr := stdInflate(in, hist)
	limit := 1 << 22
	got, err, end := inflateAll(in, hist, limit, nil)
	i := 0
	split := func() int {
		if len(sizes) == 0 {
			return 1
		}
		i++
		return int(sizes[i%len(sizes)])
	}
	got2, err2, end2 := inflateAll(in, hist, limit, split)
	if !bytes.Equal(got, got2) || (err == nil) != (err2 == nil) || end != end2 {
		t.Fatalf("split changes the result: %d bytes %v %v, split %d bytes %v %v", len(got), err, end, len(got2), err2, end2)
	}
	switch {
	case wantErr == nil:
		// compress/flate reached the final block.
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(want))
		}
	case errors.Is(wantErr, io.ErrUnexpectedEOF):
		// Incomplete: the inflater has decoded at least what compress/flate
		// has (which stops short of the end: it wants as many bits as its
		// longest code before it decodes a symbol), or found an error
		// compress/flate would find once more bytes come.
		if err == nil && !bytes.HasPrefix(got, want) {
			t.Fatalf("incomplete stream: got %d bytes (boundary %v), want %d", len(got), end, len(want))
		}
	default:
		if err == nil {
			t.Fatalf("compress/flate: %v; inflater: %d bytes, no error", wantErr, len(got))
		}
	}
}

func TestInflateMatchesCompressFlate(t *testing.T) {
	for i, in := range inflateInputs(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkInflate(t, in, nil, []byte{1, 7, 3, 200, 13})
		})
	}
}

func FuzzInflate(f *testing.F) {
	for _, in := range inflateInputs(f) {
		if len(in) < 4096 {
			f.Add(in, []byte{3, 1, 9})
		}
	}
	f.Fuzz(func(t *testing.T, in, sizes []byte) {
		checkInflate(t, in, nil, sizes)
	})
}

// The codec's compressors (klauspost/compress, every level and window)
// round-trip through the inflater, and a compressor with a window of 2^w
// bytes never reaches further back.
func TestInflateKlauspost(t *testing.T) {
	texts := [][]byte{textOfInternal(100000), randomBytes(40000, 2), bytes.Repeat([]byte("abcd"), 30000)}
	for bitsW := 8; bitsW <= 15; bitsW++ {
		for _, level := range []int{1, 5, 9} {
			for _, text := range texts {
				var b bytes.Buffer
				var w *flate.Writer
				if bitsW == 15 {
					w, _ = flate.NewWriter(&b, level)
				} else {
					w, _ = flate.NewWriterWindow(&b, 1<<bitsW)
				}
				w.Write(text)
				w.Flush()
				f := new(inflater)
				f.reset()
				f.window = 1 << bitsW
				var out []byte
				if err := f.inflate(b.Bytes(), &out, nil, 1<<20); err != nil || !bytes.Equal(out, text) || !f.boundary() {
					t.Fatalf("window %d, level %d: %v, %d bytes of %d, boundary %v", bitsW, level, err, len(out), len(text), f.boundary())
				}
			}
		}
	}
}

// A stream that inflates past the limit fails as soon as it does, and the
// output never holds more than the limit.
func TestInflateLimit(t *testing.T) {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, 9)
	w.Write(make([]byte, 10<<20))
	w.Flush()
	for _, limit := range []int{0, 1, 1000, 65536, 1 << 20} {
		got, err, _ := inflateAll(b.Bytes(), nil, limit, func() int { return 100 })
		if !errors.Is(err, errInflated) || len(got) > limit || cap(got) > limit {
			t.Fatalf("limit %d: %v, len %d cap %d", limit, err, len(got), cap(got))
		}
	}
}

func BenchmarkInflate(b *testing.B) {
	text := []byte(strings.Repeat(`{"id":12345,"name":"alice","tags":["a","b"],"score":1.5,"text":"lorem ipsum dolor"}`, 2000))
	var c bytes.Buffer
	w, _ := flate.NewWriter(&c, 5)
	w.Write(text)
	w.Flush()
	in := c.Bytes()
	b.Run("tio", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		f := new(inflater)
		out := make([]byte, 0, len(text))
		for range b.N {
			f.reset()
			out = out[:0]
			if err := f.inflate(in, &out, nil, 1<<30); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		r := flate.NewReader(bytes.NewReader(in))
		out := make([]byte, len(text))
		br := bytes.NewReader(in)
		for range b.N {
			br.Reset(in)
			r.(flate.Resetter).Reset(br, nil)
			if _, err := io.ReadFull(r, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
