package websocket

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/tiogo/tio/codec"
)

// jsonKiB is a 1 KiB JSON message of the kind servers broadcast.
var jsonKiB = func() []byte {
	var b strings.Builder
	b.WriteString(`{"type":"update","items":[`)
	for i := 0; b.Len() < 1000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%d","price":%d.%02d,"tags":["new","sale"]}`, 1000+i, i*7, 10+i, i*13%100)
	}
	b.WriteString(`]}`)
	return []byte(b.String()[:1024])
}()

// BenchmarkCompressFanout is the CPU of sending a 1 KiB JSON message to
// 100 receivers: without context takeover it is compressed once (the
// shared variant's bytes are copied to each receiver), with context
// takeover once per receiver (each has its own window).
func BenchmarkCompressFanout(b *testing.B) {
	const receivers = 100
	p := &codec.Packet{Type: TypeText, Body: jsonKiB}
	for _, level := range []int{1, 5, 9} {
		shared := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover, Level: level}})
		b.Run(fmt.Sprintf("level%d/once", level), func(b *testing.B) {
			out := make([][]byte, receivers)
			var enc []byte
			for range b.N {
				enc, _ = shared.EncodeVariant(enc[:0], p, 1)
				for i := range out {
					out[i] = append(out[i][:0], enc...)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes/msg")
		})
		own := New(Config{Compression: Compression{Mode: CompressionContextTakeover, Level: level}})
		encs := make([]codec.Encoder, receivers)
		for i := range encs {
			_, _, c := handshakeWith(b, own, "permessage-deflate; client_max_window_bits")
			encs[i] = c.Encoder
		}
		b.Run(fmt.Sprintf("level%d/per-receiver", level), func(b *testing.B) {
			out := make([][]byte, receivers)
			for range b.N {
				for i, e := range encs {
					out[i], _ = e.Encode(out[i][:0], p)
				}
			}
			b.ReportMetric(float64(len(out[0])), "bytes/msg")
		})
	}
	plain := New(Config{})
	b.Run("uncompressed", func(b *testing.B) {
		out := make([][]byte, receivers)
		var enc []byte
		for range b.N {
			enc, _ = plain.Encode(enc[:0], p)
			for i := range out {
				out[i] = append(out[i][:0], enc...)
			}
		}
	})
}

// BenchmarkCompress is the CPU of compressing one 1 KiB JSON message for
// one connection (once per fan-out without context takeover; per receiver
// with it), and of inflating it.
func BenchmarkCompress(b *testing.B) {
	p := &codec.Packet{Type: TypeText, Body: jsonKiB}
	for _, level := range []int{1, 5, 9} {
		shared := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover, Level: level}})
		b.Run(fmt.Sprintf("level%d/no-takeover", level), func(b *testing.B) {
			var enc []byte
			for range b.N {
				enc, _ = shared.EncodeVariant(enc[:0], p, 1)
			}
		})
		own := New(Config{Compression: Compression{Mode: CompressionContextTakeover, Level: level}})
		_, _, c := handshakeWith(b, own, "permessage-deflate; client_max_window_bits")
		b.Run(fmt.Sprintf("level%d/takeover", level), func(b *testing.B) {
			var enc []byte
			for range b.N {
				enc, _ = c.Encoder.Encode(enc[:0], p)
			}
		})
	}
	shared := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover}})
	frame, _ := shared.EncodeVariant(nil, p, 1)
	payload := frame[4:] // a 2-byte header with a 16-bit length
	b.Run("inflate", func(b *testing.B) {
		f := new(inflater)
		var out []byte
		b.SetBytes(int64(len(jsonKiB)))
		for range b.N {
			f.reset()
			out = out[:0]
			if err := f.inflate(payload, &out, nil, 1<<20); err != nil {
				b.Fatal(err)
			}
			if err := f.inflate(syncTail, &out, nil, 1<<20); err != nil || !bytes.Equal(out, jsonKiB) {
				b.Fatal(err, len(out))
			}
		}
	})
}
