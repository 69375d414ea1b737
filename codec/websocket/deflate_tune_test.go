package websocket

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
)

// quotesJSON is a JSON document of exactly size bytes like the benchmarks'
// (bench.AppendJSON): stock quotes drawn from seed, padded with a note of
// random letters.
func quotesJSON(size int, seed uint64) []byte {
	syms := [...]string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "AMD", "INTC", "ORCL", "IBM", "CSCO"}
	x := seed*0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	b := append([]byte(nil), `{"type":"quotes","seq":`...)
	b = strconv.AppendUint(b, seed%1e9, 10)
	b = append(b, `,"items":[`...)
	const tail = `],"note":""}`
	var it [128]byte
	for i := 0; ; i++ {
		q := it[:0]
		if i > 0 {
			q = append(q, ',')
		}
		r := next()
		p := 1000 + r>>40%90000
		q = append(q, `{"symbol":"`...)
		q = append(q, syms[r%uint64(len(syms))]...)
		q = append(q, `","bid":`...)
		q = strconv.AppendFloat(q, float64(p)/100, 'f', 2, 64)
		q = append(q, `,"ask":`...)
		q = strconv.AppendFloat(q, float64(p+1+r>>20%9)/100, 'f', 2, 64)
		q = append(q, `,"volume":`...)
		q = strconv.AppendUint(q, r>>8%10000000, 10)
		q = append(q, `,"exchange":"XNAS"}`...)
		if len(b)+len(q)+len(tail) > size {
			break
		}
		b = append(b, q...)
	}
	b = append(b, `],"note":"`...)
	for len(b) < size-2 {
		b = append(b, "abcdefghijklmnopqrstuvwxyz"[next()%26])
	}
	return append(b, `"}`...)
}

type deflater struct {
	name string
	fn   func() func(dst, msg []byte) []byte
}

// deflaters are the ways of compressing one message on its own (a sync
// flush, no context) that BenchmarkDeflaters compares.
func deflaters() []deflater {
	writer := func(level int) func() func(dst, msg []byte) []byte {
		return func() func(dst, msg []byte) []byte {
			var s sliceWriter
			w, _ := flate.NewWriter(&s, level)
			return func(dst, msg []byte) []byte {
				s.b = dst
				w.Reset(&s)
				_, _ = w.Write(msg)
				_ = w.Flush()
				return s.b
			}
		}
	}
	return []deflater{
		{"level1", writer(1)},
		{"level2", writer(2)},
		{"level3", writer(3)},
		{"huffman", writer(flate.HuffmanOnly)},
		{"tio", func() func(dst, msg []byte) []byte {
			e := new(msgEncoder)
			return func(dst, msg []byte) []byte {
				return append(e.encode(dst, nil, msg, 1<<15), syncTail...)
			}
		}},
		{"stateless", func() func(dst, msg []byte) []byte {
			var s sliceWriter
			return func(dst, msg []byte) []byte {
				s.b = dst
				_ = flate.StatelessDeflate(&s, msg, false, nil)
				return s.b
			}
		}},
	}
}

// BenchmarkDeflatersInterleaved runs every candidate in turn, in batches
// of 32 messages, so that a shared machine's noise hits them alike; it
// reports each one's thread CPU time per message (cpu-ns/msg), which
// the other work on a shared machine does not inflate as much as it does
// wall time.
func BenchmarkDeflatersInterleaved(b *testing.B) {
	for _, size := range []int{64, 256, 1024, 4096, 16384} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			msgs := make([][]byte, 16)
			for i := range msgs {
				msgs[i] = quotesJSON(size, uint64(i+1))
			}
			ds := deflaters()
			if only := os.Getenv("DEFLATERS"); only != "" {
				ds = slices.DeleteFunc(ds, func(d deflater) bool { return !strings.Contains(","+only+",", ","+d.name+",") })
			}
			fns := make([]func(dst, msg []byte) []byte, len(ds))
			samples := make([][]float64, len(ds))
			sizes := make([]int, len(ds))
			for i := range ds {
				fns[i] = ds[i].fn()
			}
			var out []byte
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for n := range b.N {
				for j, fn := range fns {
					t0 := threadCPU()
					for k := range 32 {
						out = fn(out[:0], msgs[(n+k)%len(msgs)])
						if n == 0 {
							sizes[j] += len(out)
						}
					}
					samples[j] = append(samples[j], float64(threadCPU()-t0)/32)
				}
			}
			for j := range ds {
				sum := 0.0
				for _, x := range samples[j] {
					sum += x
				}
				b.ReportMetric(sum/float64(len(samples[j])), ds[j].name+"-cpu-ns/msg")
				b.ReportMetric(float64(sizes[j])/32, ds[j].name+"-bytes")
			}
		})
	}
}

// BenchmarkDeflaters compares compressors for messages of 64 B to 16 KiB,
// interleaved by size; bytes/msg is the compressed size (sync tail included).
func BenchmarkDeflaters(b *testing.B) {
	for _, size := range []int{64, 1024, 16384} {
		msgs := make([][]byte, 16)
		for i := range msgs {
			msgs[i] = quotesJSON(size, uint64(i+1))
		}
		for _, d := range deflaters() {
			b.Run(fmt.Sprintf("%d/%s", size, d.name), func(b *testing.B) {
				fn := d.fn()
				var out []byte
				total := 0
				for i := range b.N {
					out = fn(out[:0], msgs[i%len(msgs)])
					total += len(out)
				}
				b.SetBytes(int64(size))
				b.ReportMetric(float64(total)/float64(b.N), "bytes/msg")
			})
		}
	}
}

// BenchmarkInflateSizes is the inflater on level-1 output of each size.
func BenchmarkInflateSizes(b *testing.B) {
	for _, size := range []int{64, 1024, 16384} {
		for _, d := range deflaters() {
			fn := d.fn()
			msgs := make([][]byte, 16)
			ins := make([][]byte, 16)
			for i := range msgs {
				msgs[i] = quotesJSON(size, uint64(i+1))
				ins[i] = fn(nil, msgs[i])
			}
			b.Run(fmt.Sprintf("%d/%s", size, d.name), func(b *testing.B) {
				f := new(inflater)
				var out []byte
				b.SetBytes(int64(size))
				for i := range b.N {
					f.reset()
					out = out[:0]
					k := i % len(ins)
					if err := f.inflate(ins[k], &out, nil, 1<<20); err != nil {
						b.Fatal(err)
					}
					if i < len(ins) && !bytes.Equal(out, msgs[k]) {
						b.Fatal("mismatch")
					}
				}
			})
		}
	}
}

// BenchmarkInflateCPU reports the inflater's thread CPU time per message
// (cpu-ns/msg) for level-1 output of 64 B to 16 KiB JSON messages.
func BenchmarkInflateCPU(b *testing.B) {
	for _, size := range []int{256, 1024, 4096, 16384} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			fn := deflaters()[0].fn()
			msgs := make([][]byte, 16)
			ins := make([][]byte, 16)
			for i := range msgs {
				msgs[i] = quotesJSON(size, uint64(i+1))
				ins[i] = fn(nil, msgs[i])
			}
			f := new(inflater)
			var out []byte
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			for i := range b.N {
				f.reset()
				out = out[:0]
				k := i % len(ins)
				if err := f.inflate(ins[k], &out, nil, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(threadCPU()-t0)/float64(b.N), "cpu-ns/msg")
		})
	}
}
