package websocket

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"

	"github.com/tiogo/tio/codec"
)

// Plain HTTP on the WebSocket port. A request that is not an upgrade is
// answered, never dropped: by the server's http.Handler when Config.HTTP is
// set (the codec hands each whole request, head and body, to the server as
// a packet of type TypeHTTP, and the connection stays in HTTP for the next
// request: keep-alive and pipelining), or else by the codec itself: 426
// Upgrade Required for a GET or HEAD, 405 Method Not Allowed with
// "Allow: GET" for anything else.

// TypeHTTP is the packet type of a plain HTTP request (its Body the whole
// request: request line, headers and body), handed to the server when
// Config.HTTP is set. Servers serve it with their http.Handler (see
// tio.WithHTTP); it never reaches application handlers.
const TypeHTTP codec.Type = 0x102

// DefaultMaxHTTPBody bounds a plain HTTP request's body unless
// Config.MaxHTTPBody says otherwise.
const DefaultMaxHTTPBody = 1 << 20

// methods are the request methods that select this codec (RFC 9110).
var methods = []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// sniffHTTP reports whether first begins an HTTP request.
func sniffHTTP(first []byte) codec.Match {
	more := false
	for _, m := range methods {
		n := min(len(first), len(m))
		if string(first[:n]) != m[:n] {
			continue
		}
		if n == len(m) {
			return codec.Matched
		}
		more = true
	}
	if more {
		return codec.NeedMore
	}
	return codec.NoMatch
}

// isUpgrade reports whether the request head is an attempt at a WebSocket
// upgrade — it has an Upgrade, Sec-WebSocket-Key or Sec-WebSocket-Version
// header, or a Connection header naming upgrade — which the upgrade path
// then checks in full (a broken attempt gets its precise status there). A
// request with none of them is plain HTTP. It allocates nothing.
func isUpgrade(head []byte) bool {
	for rest := head[bytes.Index(head, crlf)+2:]; len(rest) > 2; {
		eol := bytes.Index(rest, crlf)
		if eol < 0 {
			return false
		}
		line := rest[:eol]
		rest = rest[eol+2:]
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name, value := line[:colon], line[colon+1:]
		switch {
		case equalFoldASCII(name, "Upgrade"), equalFoldASCII(name, "Sec-WebSocket-Key"), equalFoldASCII(name, "Sec-WebSocket-Version"):
			return true
		case equalFoldASCII(name, "Connection") && hasToken(value, "upgrade"):
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitively).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		if equalFoldASCII(bytes.TrimSpace(v[:i]), tok) {
			return true
		}
		v = v[min(i+1, len(v)):]
	}
	return false
}

// plainHTTP handles a request that is not an upgrade, whose head (n bytes)
// is in in.
func (d *decoder) plainHTTP(c codec.Conn, in []byte, n int, p *codec.Packet) (int, bool, error) {
	head := in[:n]
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		d.state = stClosed
		writeStatus(c, http.StatusBadRequest, nil)
		return n, false, fmt.Errorf("websocket: a bad HTTP request: %v: %w", err, codec.ErrHandshake)
	}
	if !d.cd.cfg.HTTP {
		d.state = stClosed
		if req.Method == http.MethodGet || req.Method == http.MethodHead {
			writeStatus(c, http.StatusUpgradeRequired, []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"})
		} else {
			writeStatus(c, http.StatusMethodNotAllowed, []string{"Allow: GET"})
		}
		return n, false, fmt.Errorf("websocket: a plain HTTP request and no HTTP handler: %w", codec.ErrRefused)
	}
	switch {
	case len(req.TransferEncoding) > 0:
		d.state = stClosed
		writeStatus(c, http.StatusLengthRequired, nil)
		return n, false, fmt.Errorf("websocket: an HTTP request with a chunked body: %w", codec.ErrRefused)
	case req.ContentLength > int64(d.cd.cfg.MaxHTTPBody):
		d.state = stClosed
		writeStatus(c, http.StatusRequestEntityTooLarge, nil)
		return n, false, fmt.Errorf("websocket: an HTTP request body of %d bytes: %w", req.ContentLength, codec.ErrTooBig)
	}
	total := n + int(max(req.ContentLength, 0))
	if len(in) < total {
		d.flags |= flagHTTPWait // the body is on its way (the packet deadline applies)
		return 0, false, nil
	}
	d.flags &^= flagHTTPWait
	d.state, d.scanned = stHTTP, 0
	p.Type, p.Body = TypeHTTP, in[:total]
	return total, true, nil
}
