package tio

import (
	"bytes"
	"testing"
)

// proxyHeader never panics, never claims more bytes than it was given, and
// a header it accepts parses the same from exactly its own bytes.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 9001\r\n\xa1"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 ::1 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"), 203, 0, 113, 7, 127, 0, 0, 1, 0x15, 0xb3, 0x23, 0x29))
	f.Add([]byte("PROXY TCP4 1.2.3.4"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, client, err := proxyHeader(b)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) || n > MaxProxyHeader {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		if n == 0 {
			return // more bytes needed
		}
		n2, client2, err := proxyHeader(bytes.Clone(b[:n]))
		if err != nil || n2 != n || client2 != client {
			t.Fatalf("%q: %d %v; alone: %d %v %v", b[:n], n, client, n2, client2, err)
		}
	})
}
