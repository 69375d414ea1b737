package websocket

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// Request is a parsed upgrade request.
//
// Its strings share one copy of the request's bytes, at most
// Config.MaxHandshake of them: keeping the Request, or any string taken
// from it (Path, a value of Query or Header), keeps those bytes. Copy
// (strings.Clone) what you store beyond the handshake if you do not mean
// to keep the request itself.
type Request struct {
	// URI is the request target as sent ("/ws/42?token=abc", or
	// "http://example.com/ws" in absolute form).
	URI string
	// Path and RawQuery split the target's path and query; the path of an
	// absolute target without one is "/".
	Path, RawQuery string
	// Host is the host the request is for: the authority of an absolute
	// target (RFC 7230, section 5.4), otherwise the Host header.
	Host string
	// Origin is the Origin header, or "" when there is none.
	Origin string
	// Protocol is the subprotocol selected, or "".
	Protocol string

	raw  string // the whole request, up to and including its blank line
	head int    // where its header fields begin in raw
}

// Query parses RawQuery.
func (r *Request) Query() url.Values {
	v, _ := url.ParseQuery(r.RawQuery)
	return v
}

// Header parses the request's header fields into a new http.Header, which
// the caller owns. It leaves out Host (see Host) and the fields of the
// WebSocket handshake that the codec handles itself: Upgrade, Connection
// and Sec-WebSocket-Key, -Version, -Protocol and -Extensions. Each call
// allocates the map afresh: nothing is kept on the Request. To read one
// field without allocating, use HeaderValue.
func (r *Request) Header() http.Header {
	h := make(http.Header)
	r.fields(func(name, value string) bool {
		k := textproto.CanonicalMIMEHeaderKey(name)
		h[k] = append(h[k], value)
		return true
	})
	return h
}

// HeaderValue returns the value of the first header field named name
// (compared without regard to ASCII case) among those Header shows, or ""
// if there is none. It does not allocate.
func (r *Request) HeaderValue(name string) string {
	var v string
	r.fields(func(k, value string) bool {
		if equalFoldASCII(k, name) {
			v = value
			return false
		}
		return true
	})
	return v
}

// fields calls f with the name and value of each header field that Header
// shows, in order, until f returns false. The request was checked by
// checkRequest: every line up to the blank one is a well-formed field.
func (r *Request) fields(f func(name, value string) bool) {
	rest := r.raw[r.head:]
	for {
		eol := indexCRLF(rest)
		if eol <= 0 {
			return
		}
		line := rest[:eol]
		rest = rest[eol+2:]
		colon := strings.IndexByte(line, ':')
		name := line[:colon]
		if hidden(name) {
			continue
		}
		if !f(name, trimOWS(line[colon+1:])) {
			return
		}
	}
}

func indexCRLF(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return i
		}
	}
	return -1
}

// hidden reports whether a header field is one that Header leaves out.
func hidden(name string) bool {
	for _, h := range hiddenFields {
		if equalFoldASCII(name, h) {
			return true
		}
	}
	return false
}

var hiddenFields = [...]string{
	"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
	"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
}

// span is where a part of the request lies in its bytes.
type span struct{ i, j int }

func (s span) of(b []byte) []byte { return b[s.i:s.j] }

// reqInfo is what checkRequest learns of a request: where its parts are.
type reqInfo struct {
	target, path, query span
	host                span // the absolute target's authority, or the Host header
	origin              span
	head                int  // where the header fields begin
	hasOrigin           bool // an Origin header is present (it may be empty)
	absolute            bool // the target is in absolute form
}

// newRequest builds the Request of raw, which checkRequest described in ri:
// two allocations, the Request and one string of exactly raw's bytes.
func newRequest(raw []byte, ri *reqInfo) *Request {
	s := string(raw)
	r := &Request{
		raw:      s,
		head:     ri.head,
		URI:      s[ri.target.i:ri.target.j],
		Path:     s[ri.path.i:ri.path.j],
		RawQuery: s[ri.query.i:ri.query.j],
		Host:     s[ri.host.i:ri.host.j],
		Origin:   s[ri.origin.i:ri.origin.j],
	}
	if r.Path == "" {
		r.Path = "/"
	}
	return r
}

// Reasons checkRequest gives; the HTTP status says the rest.
const (
	whyRequestLine   = "malformed request line"
	whyVersion       = "HTTP version other than 1.1"
	whyTarget        = "malformed request target"
	whyTooMany       = "too many header fields"
	whyHeaderLine    = "malformed header line"
	whyHeaderName    = "invalid header field name"
	whyHeaderValue   = "control character in a header field value"
	whyDuplicateHost = "more than one Host header"
	whyHost          = "invalid Host header"
	whyDuplicateKey  = "more than one Sec-WebSocket-Key header"
	whyKey           = "Sec-WebSocket-Key is not 16 bytes in base64"
	whyDuplicateOrig = "more than one Origin header"
	whyBody          = "upgrade request with a body (Content-Length or Transfer-Encoding)"
)

var (
	crlf        = []byte("\r\n")
	keyEncoding = base64.StdEncoding.Strict()
)

// checkRequest checks the syntax of an upgrade request, raw, which ends
// with its blank line, more strictly than gobwas/ws does, and fills ri. It
// returns 0 for a request that may go on to gobwas's checks, or the HTTP
// status that refuses it and why:
//
//   - 400 for a request line that is not "method SP target SP version",
//     a target that is neither a path ("/...") nor an absolute URI with a
//     host and no user information, a header line that is not a token, a
//     colon and a value without control characters (HTAB aside), more than
//     one Host, Sec-WebSocket-Key or Origin header, an invalid Host, a key
//     that does not decode to 16 bytes, and a request with a body
//     (Content-Length other than 0, any Transfer-Encoding): its bytes would
//     otherwise be read as frames, which a proxy sees as the request's body;
//   - 505 for an HTTP version other than 1.1;
//   - 431 for more than maxHeaders header fields.
//
// It does not allocate.
func checkRequest(raw []byte, maxHeaders int, ri *reqInfo) (status int, why string) {
	*ri = reqInfo{}
	eol := bytes.Index(raw, crlf)
	line := raw[:eol]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !isToken(line[:sp1]) {
		return http.StatusBadRequest, whyRequestLine
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return http.StatusBadRequest, whyRequestLine
	}
	sp2 += sp1 + 1
	switch v := line[sp2+1:]; {
	case string(v) == "HTTP/1.1":
	case len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]):
		return http.StatusHTTPVersionNotSupported, whyVersion
	default:
		return http.StatusBadRequest, whyRequestLine
	}
	ri.target = span{sp1 + 1, sp2}
	if !parseTarget(raw, ri) {
		return http.StatusBadRequest, whyTarget
	}

	var seenHost, seenKey bool
	pos := eol + 2
	ri.head = pos
	for n := 1; ; n++ {
		eol := bytes.Index(raw[pos:], crlf)
		if eol == 0 {
			return 0, "" // the blank line
		}
		if n > maxHeaders {
			return http.StatusRequestHeaderFieldsTooLarge, whyTooMany
		}
		line := raw[pos : pos+eol]
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return http.StatusBadRequest, whyHeaderLine
		}
		name := line[:colon]
		if !isToken(name) { // also a space before the colon, or a folded line
			return http.StatusBadRequest, whyHeaderName
		}
		vi, vj := pos+colon+1, pos+eol
		for vi < vj && (raw[vi] == ' ' || raw[vi] == '\t') {
			vi++
		}
		for vj > vi && (raw[vj-1] == ' ' || raw[vj-1] == '\t') {
			vj--
		}
		value := raw[vi:vj]
		for _, b := range value {
			if b < ' ' && b != '\t' || b == 0x7F {
				return http.StatusBadRequest, whyHeaderValue
			}
		}
		switch {
		case equalFoldASCII(name, "Host"):
			if seenHost {
				return http.StatusBadRequest, whyDuplicateHost
			}
			seenHost = true
			if !validHost(value) {
				return http.StatusBadRequest, whyHost
			}
			if !ri.absolute {
				ri.host = span{vi, vj}
			}
		case equalFoldASCII(name, "Sec-WebSocket-Key"):
			if seenKey {
				return http.StatusBadRequest, whyDuplicateKey
			}
			seenKey = true
			if len(value) != 24 { // before decoding: a longer key would overrun key
				return http.StatusBadRequest, whyKey
			}
			var key [18]byte
			if n, err := keyEncoding.Decode(key[:], value); err != nil || n != 16 {
				return http.StatusBadRequest, whyKey
			}
		case equalFoldASCII(name, "Origin"):
			if ri.hasOrigin {
				return http.StatusBadRequest, whyDuplicateOrig
			}
			ri.hasOrigin, ri.origin = true, span{vi, vj}
		case equalFoldASCII(name, "Content-Length"):
			if len(value) == 0 || len(bytes.Trim(value, "0")) != 0 {
				return http.StatusBadRequest, whyBody
			}
		case equalFoldASCII(name, "Transfer-Encoding"):
			return http.StatusBadRequest, whyBody
		}
		pos += eol + 2
	}
}

// parseTarget splits the request target at ri.target into its parts: an
// origin-form path and query, or an absolute URI's authority, path and
// query (RFC 7230, section 5.3). It reports whether the target is valid.
func parseTarget(raw []byte, ri *reqInfo) bool {
	t := ri.target.of(raw)
	if len(t) == 0 {
		return false
	}
	for _, b := range t {
		if b <= ' ' || b == 0x7F || b == '#' {
			return false
		}
	}
	if !validPercents(t) {
		return false
	}
	start := ri.target.i
	if t[0] != '/' {
		k := bytes.Index(t, schemeSep)
		if k <= 0 || !isScheme(t[:k]) {
			return false
		}
		a := k + len(schemeSep)
		end := bytes.IndexAny(t[a:], "/?")
		if end < 0 {
			end = len(t) - a
		}
		auth := t[a : a+end]
		if len(auth) == 0 || !validHost(auth) {
			return false
		}
		ri.absolute, ri.host = true, span{start + a, start + a + end}
		start += a + end
		t = t[a+end:]
	}
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		ri.path, ri.query = span{start, start + q}, span{start + q + 1, start + len(t)}
	} else {
		ri.path, ri.query = span{start, start + len(t)}, span{start + len(t), start + len(t)}
	}
	return true
}

// validHost reports whether b is uri-host [":" port] (RFC 3986, section
// 3.2.2): an IP literal in brackets, or a name or IPv4 address of letters,
// digits, "-._~", sub-delims and percent signs; no user information. The
// empty host is valid (RFC 7230, section 5.4).
func validHost(b []byte) bool {
	h := b
	if len(h) > 0 && h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		for _, c := range h[1:end] {
			if !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		h = h[end+1:]
		return len(h) == 0 || h[0] == ':' && validPort(h[1:])
	}
	if colon := bytes.IndexByte(h, ':'); colon >= 0 {
		if !validPort(h[colon+1:]) {
			return false
		}
		h = h[:colon]
	}
	for _, c := range h {
		if !regName[c] {
			return false
		}
	}
	return validPercents(h)
}

// validPercents reports whether every "%" in b begins a percent-encoded
// byte: two hexadecimal digits follow it (RFC 3986, section 2.1).
func validPercents(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func validPort(p []byte) bool {
	if len(p) > 5 {
		return false
	}
	for _, c := range p {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// isScheme reports whether s is a URI scheme: a letter, then letters,
// digits, "+", "-" or ".".
func isScheme(s []byte) bool {
	for i, c := range s {
		letter := c|0x20 >= 'a' && c|0x20 <= 'z'
		if !letter && (i == 0 || !isDigit(c) && c != '+' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

// isToken reports whether s is an HTTP token (RFC 7230, section 3.2.6).
func isToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// tchar and regName are the bytes of tokens and of host names.
var tchar, regName = func() (t, r [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c], r[c] = true, true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], r[c], t[c-32], r[c-32] = true, true, true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=%" {
		r[c] = true
	}
	return t, r
}()

// trimOWS trims spaces and tabs from both ends of s.
func trimOWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// equalFoldASCII reports whether a and b are equal, ASCII letters compared
// without regard to case and every other byte as is. It is the one rule
// for comparing names and origins here: Unicode case folding would make
// "k" equal the Kelvin sign (U+212A), which no browser sends for a host
// (RFC 6454: hosts are serialized in their ASCII form).
func equalFoldASCII[A, B ~string | ~[]byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if x != y && (x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z') {
			return false
		}
	}
	return true
}
