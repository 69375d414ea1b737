package tio

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/pool"
)

// WithHTTP serves plain HTTP requests — requests that are not WebSocket
// upgrades — on the server's port with h: a web page, /metrics
// (srv.MetricsHandler()), health checks, next to WebSocket and the binary
// protocol, and over TLS with WithTLS (Request.TLS is then set, as net/http
// sets it). A page served this way is the same origin as the WebSocket
// endpoint, so the default origin rule lets it connect.
//
// Each request runs on the worker pool, never on an event loop, in order
// per connection (keep-alive and pipelining work); its response is buffered
// and written through the connection's outbound queue, with a
// Content-Length (HEAD gets the headers alone). Bounds: the request line
// and headers are bounded like an upgrade request (Limits.MaxHandshake),
// the body by websocket.Config.MaxHTTPBody (1 MiB; a chunked request body
// is refused with 411); a connection serves requests for at most the
// handshake timeout (WithHandshakeTimeout), after which it is closed and the
// client reconnects. Responses do not stream (http.Flusher is not
// available). Without WithHTTP, a plain GET is answered 426 Upgrade
// Required and any other method 405 Method Not Allowed.
//
// WithHTTP configures the default WebSocket codec; with WithCodecs, set
// websocket.Config.HTTP on the WebSocket codec given.
func WithHTTP(h http.Handler) Option {
	return func(o *config) { o.http = h }
}

// serveHTTP queues a plain HTTP request for the worker pool.
func (s *Server) serveHTTP(l *link.Link, p *codec.Packet) {
	raw := append([]byte(nil), p.Body...) // the request leaves the loop
	err := s.pool.Submit(l.Queue(), pool.Task{
		Run:   func() { s.answerHTTP(l, raw) },
		Label: uint32(p.Type),
		Size:  len(raw),
	})
	if err != nil {
		l.Fail(link.ReasonOverloaded, err, true)
	}
}

// answerHTTP runs the http.Handler for one request, on the pool, and writes
// its response.
func (s *Server) answerHTTP(l *link.Link, raw []byte) {
	ch := (*channel.Channel)(l)
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil { // the codec read it already: cannot happen
		ch.Close(channel.ReasonDecodeError)
		return
	}
	req.RemoteAddr = ch.RemoteAddr().String()
	if cs, ok := ch.TLS(); ok {
		req.TLS = &cs // an https request, as net/http says it
	}
	w := &httpResponse{header: make(http.Header)}
	func() {
		defer func() {
			if v := recover(); v != nil {
				s.stats.Panicked(false)
				s.log.Error("tio: HTTP handler panicked", "channel", ch.ID(), "path", req.URL.Path, "panic", v)
				*w = httpResponse{header: make(http.Header), status: http.StatusInternalServerError}
			}
		}()
		s.cfg.http.ServeHTTP(w, req)
	}()
	if w.status == 0 {
		w.status = http.StatusOK
	}
	resp := &http.Response{
		StatusCode:    w.status,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Request:       req,
		ContentLength: int64(w.body.Len()),
		Body:          io.NopCloser(&w.body),
		Close:         req.Close,
	}
	if resp.Header.Get("Date") == "" {
		resp.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if req.Method == http.MethodHead {
		resp.Header.Set("Content-Length", strconv.Itoa(w.body.Len())) // Response.Write sends no body for HEAD
	}
	var out bytes.Buffer
	if err := resp.Write(&out); err != nil {
		ch.Close(channel.ReasonIOError)
		return
	}
	if err := l.SendRaw(out.Bytes()); err != nil {
		return // closed meanwhile, or a slow consumer (closed)
	}
	if req.Close {
		ch.Close(channel.ReasonClosedByApp)
	}
}

// httpResponse is the http.ResponseWriter of a request served on the
// pool: it buffers the response.
type httpResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *httpResponse) Header() http.Header { return w.header }

func (w *httpResponse) WriteHeader(status int) {
	if w.status == 0 {
		if status < 100 || status > 999 {
			panic(fmt.Sprintf("tio: invalid HTTP status %d", status))
		}
		w.status = status
	}
}

func (w *httpResponse) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
