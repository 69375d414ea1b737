package tlsconn

import (
	"fmt"

	"github.com/tiogo/tio/codec"
)

// TLS record layer constants (RFC 8446 §5, RFC 5246 §6.2).
const (
	recordHeaderLen = 5

	recordAlert           = 21
	recordHandshake       = 22
	recordApplicationData = 23

	maxPlaintext       = 1 << 14             // a record's plaintext, and the ClientHello records
	maxCiphertext      = maxPlaintext + 2048 // TLS 1.2 (what crypto/tls accepts)
	maxCiphertextTLS13 = maxPlaintext + 256  // TLS 1.3

	typeClientHello = 1

	extSupportedVersions = 43

	versionTLS12 = 0x0303
	versionTLS13 = 0x0304

	alertLevelFatal      = 2
	alertRecordOverflow  = 22
	alertDecodeError     = 50
	alertProtocolVersion = 70
	alertInternalError   = 80
)

// Sniff tells whether first, the first bytes of a connection, begin a TLS
// connection: a handshake record (type 22) of protocol version 3.x, which no
// other protocol tio serves begins with (the binary protocol begins with
// 0xA1, WebSocket with "GET "). It needs three bytes; with fewer that could
// begin one it answers codec.NeedMore. Whether the record really holds a
// well-formed ClientHello is the Session's to say, with a precise error.
// Sniff may be called from any goroutine; first is only read.
func Sniff(first []byte) codec.Match {
	want := [...]byte{recordHandshake, 3}
	for i := 0; i < len(first) && i < 3; i++ {
		switch i {
		case 0, 1:
			if first[i] != want[i] {
				return codec.NoMatch
			}
		case 2:
			if first[i] > 4 { // SSL 3.0 to TLS 1.3 (the record version is usually 3.1)
				return codec.NoMatch
			}
		}
	}
	if len(first) < 3 {
		return codec.NeedMore
	}
	return codec.Matched
}

// hello is what the loop learns from a whole ClientHello before it queues
// the handshake.
type hello struct {
	end        int    // bytes of the records that carry the ClientHello
	maxVersion uint16 // the highest protocol version the client offers (GREASE ignored)
}

// scanHello looks for a whole ClientHello at the start of buf, the bytes
// received so far, parsing only record headers and the fields it needs. It
// returns a zero hello and no error while more bytes are needed. limit
// bounds the bytes of the records that carry it, headers included. It
// allocates only when the ClientHello is fragmented over several records
// (then at most limit bytes).
func scanHello(buf []byte, limit int) (hello, error) {
	var (
		hdr    [4]byte // the handshake message header, as it arrives
		hdrN   int
		msgLen = -1
		body   []byte // the ClientHello body, once whole
		joined []byte // fragments joined, when there are several
		single bool   // the body lies whole in one record: no copy
	)
	for off := 0; ; {
		if len(buf)-off < recordHeaderLen {
			if err := checkHeaderPrefix(buf[off:]); err != nil {
				return hello{}, err
			}
			if off+recordHeaderLen > limit {
				return hello{}, fmt.Errorf("%w: over %d bytes", ErrHelloTooLarge, limit)
			}
			return hello{}, nil
		}
		h := buf[off : off+recordHeaderLen]
		if err := checkHeaderPrefix(h); err != nil {
			return hello{}, err
		}
		n := int(h[3])<<8 | int(h[4])
		switch {
		case n == 0:
			return hello{}, fmt.Errorf("%w: empty handshake record", ErrMalformedHello)
		case n > maxPlaintext:
			return hello{}, fmt.Errorf("%w: ClientHello record of %d bytes", ErrRecordTooLarge, n)
		case off+recordHeaderLen+n > limit:
			return hello{}, fmt.Errorf("%w: over %d bytes", ErrHelloTooLarge, limit)
		}
		frag := buf[off+recordHeaderLen:]
		whole := len(frag) >= n
		frag = frag[:min(n, len(frag))]
		// The handshake message header, possibly split over records.
		for hdrN < 4 && len(frag) > 0 {
			hdr[hdrN] = frag[0]
			hdrN++
			frag = frag[1:]
			if hdrN == 1 && hdr[0] != typeClientHello {
				return hello{}, fmt.Errorf("%w: first handshake message has type %d", ErrMalformedHello, hdr[0])
			}
			if hdrN == 4 {
				msgLen = int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
				if recordHeaderLen+4+msgLen > limit {
					return hello{}, fmt.Errorf("%w: %d bytes announced", ErrHelloTooLarge, msgLen)
				}
				single = off == 0 && len(frag) >= msgLen
			}
		}
		if !whole {
			return hello{}, nil
		}
		if msgLen >= 0 {
			if single {
				body = frag[:msgLen]
			} else {
				if joined == nil {
					joined = make([]byte, 0, msgLen)
				}
				joined = append(joined, frag[:min(len(frag), msgLen-len(joined))]...)
				if len(joined) == msgLen {
					body = joined
				}
			}
		}
		off += recordHeaderLen + n
		if body != nil || msgLen == 0 {
			v, ok := helloVersion(body)
			if !ok {
				return hello{}, fmt.Errorf("%w: fields overrun the message", ErrMalformedHello)
			}
			return hello{end: off, maxVersion: v}, nil
		}
	}
}

// checkHeaderPrefix checks what is there of a ClientHello record's header:
// a handshake record of version 3.x.
func checkHeaderPrefix(h []byte) error {
	if len(h) > 0 && h[0] != recordHandshake {
		return fmt.Errorf("%w: first record has type %d", ErrMalformedHello, h[0])
	}
	if len(h) > 1 && h[1] != 3 {
		return fmt.Errorf("%w: record version %d.x", ErrMalformedHello, h[1])
	}
	return nil
}

// helloVersion returns the highest protocol version a ClientHello body
// offers: the largest of its supported_versions extension, GREASE values
// ignored (0 if it lists none other), or without the extension its legacy
// version, capped at TLS 1.2 as crypto/tls does (RFC 8446 §4.2.1). ok is
// false when the fields overrun the body: crypto/tls would refuse it too.
// It does not look inside other extensions.
func helloVersion(b []byte) (v uint16, ok bool) {
	if len(b) < 2+32+1 {
		return 0, false
	}
	v = min(uint16(b[0])<<8|uint16(b[1]), versionTLS12)
	p := 2 + 32
	p += 1 + int(b[p]) // session id
	if p+2 > len(b) {
		return 0, false
	}
	p += 2 + (int(b[p])<<8 | int(b[p+1])) // cipher suites
	if p+1 > len(b) {
		return 0, false
	}
	p += 1 + int(b[p]) // compression methods
	switch {
	case p == len(b):
		return v, true // no extensions
	case p > len(b) || p+2 > len(b):
		return 0, false
	}
	end := p + 2 + (int(b[p])<<8 | int(b[p+1]))
	if end > len(b) {
		return 0, false
	}
	for p += 2; p < end; {
		if p+4 > end {
			return 0, false
		}
		typ, n := int(b[p])<<8|int(b[p+1]), int(b[p+2])<<8|int(b[p+3])
		p += 4
		if p+n > end {
			return 0, false
		}
		if typ == extSupportedVersions {
			data := b[p : p+n]
			if len(data) < 3 || int(data[0])+1 != len(data) || data[0]%2 != 0 {
				return 0, false
			}
			v = 0
			for i := 1; i+1 < len(data); i += 2 {
				x := uint16(data[i])<<8 | uint16(data[i+1])
				if x&0x0f0f == 0x0a0a { // GREASE (RFC 8701)
					continue
				}
				v = max(v, x)
			}
		}
		p += n
	}
	return v, true
}

// appendAlert appends a plaintext fatal alert record, as sent before any
// keys are agreed.
func appendAlert(dst []byte, desc byte) []byte {
	return append(dst, recordAlert, 3, 1, 0, 2, alertLevelFatal, desc)
}
