package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"

	"github.com/lxzan/gws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/example/echo/echoserver"
	"github.com/tiogo/tio/internal/testpki"
)

// The TLS scenarios (benchrun's f, g and h) compare tio's TLS on the event
// loop (tio.WithTLS) with the usual way of serving wss in Go: gws on
// net/http, whose http.Server runs crypto/tls with a goroutine per
// connection. Both servers get the same tls.Config (one ECDSA P-256
// certificate from the in-memory authority below); the client pins TLS 1.3
// and X25519 and keeps no session cache, so that every handshake is a full
// one and both servers do the same cryptographic work.

// TLSImpls lists the servers of the TLS scenarios: tio with WithTLS, and
// gws on net/http with crypto/tls (ImplGws names it there).
var TLSImpls = []string{ImplTio, ImplGws}

// PKI is a certificate authority made in memory (on the one tiotest.NewPKI
// uses), with one server certificate: ECDSA P-256 keys, valid for a day,
// for 127.0.0.1, ::1 and localhost.
type PKI struct {
	CA   *x509.Certificate
	Pool *x509.CertPool // trusts CA alone
	Cert tls.Certificate

	a *testpki.Authority
}

// NewPKI makes an authority and its server certificate.
func NewPKI() (*PKI, error) {
	a, err := testpki.New("tio bench CA")
	if err != nil {
		return nil, err
	}
	cert, err := a.Server("127.0.0.1", "::1", "localhost")
	if err != nil {
		return nil, err
	}
	return &PKI{CA: a.CA, Pool: a.Pool, Cert: cert, a: a}, nil
}

// ServerConfig returns the servers' configuration: the certificate, and
// crypto/tls's defaults otherwise (TLS 1.2 and 1.3; session tickets are
// sent, as by default, though the client never uses them).
func (p *PKI) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Cert}}
}

// ClientConfig returns the client's configuration (ClientTLS with the
// authority).
func (p *PKI) ClientConfig() *tls.Config { return ClientTLS(p.Pool) }

// ClientTLS returns the client's configuration: trust pool alone, TLS 1.3
// only, X25519 only (no post-quantum key share, so that the hello and the
// key exchange are the same small ones for every handshake), no session
// cache (every handshake is full).
func ClientTLS(pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		RootCAs:          pool,
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
}

// WriteFiles writes the authority's certificate, the server's certificate
// and its key as PEM files in dir, for the subprocesses of benchrun.
func (p *PKI) WriteFiles(dir string) (caFile, certFile, keyFile string, err error) {
	return p.a.WriteFiles(dir, p.Cert)
}

// LoadServerTLS returns ServerConfig's configuration for the certificate
// and key in the PEM files certFile and keyFile.
func LoadServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// LoadClientTLS returns ClientTLS's configuration trusting the
// certificates of the PEM file caFile.
func LoadClientTLS(caFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("bench: no certificate in %s", caFile)
	}
	return ClientTLS(pool), nil
}

// StartTLS starts impl's wss echo on addr with cfg: tio, example/echo's
// server with tio.WithTLS(cfg) (ws and wss on one port, TLS on the event
// loops, handshakes on tio's pool); or gws, as StartGwsHTTP. logger may be
// nil.
func StartTLS(impl, addr string, cfg *tls.Config, logger *slog.Logger) (Server, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch impl {
	case ImplTio:
		s := echoserver.New(addr, tio.WithLogger(logger), tio.WithTLS(cfg))
		if err := s.Start(); err != nil {
			return nil, err
		}
		return tioServer{s}, nil
	case ImplGws:
		return StartGwsHTTP(addr, cfg)
	}
	return nil, fmt.Errorf("bench: no TLS server for %q (want tio or gws)", impl)
}

type gwsHTTPServer struct {
	srv *http.Server
	ln  net.Listener
}

// StartGwsHTTP starts gws's echo (the handler of StartGws) as gws's
// documentation serves it over TLS: an http.Server with cfg, serving
// HTTP/1.1 only (as ServeTLS does with a TLSConfig, a goroutine per
// connection running crypto/tls's handshake and the request), whose
// handler upgrades with gws.NewUpgrader and runs the connection's ReadLoop
// on a goroutine of its own, messages handled in order (ParallelEnabled
// false).
func StartGwsHTTP(addr string, cfg *tls.Config) (Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	up := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{ParallelEnabled: false})
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r)
			if err != nil {
				return
			}
			go c.ReadLoop()
		}),
		TLSConfig: cfg.Clone(),
		Protocols: &protos,
		ErrorLog:  log.New(io.Discard, "", 0), // handshakes the client cut short
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return gwsHTTPServer{srv, ln}, nil
}

func (g gwsHTTPServer) Addr() string { return g.ln.Addr().String() }

func (g gwsHTTPServer) Close() error {
	err := g.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// MemSnapshot is a server process's memory as the Go runtime counts it
// (runtime.MemStats), for the idle wss scenario.
type MemSnapshot struct {
	HeapAlloc  uint64 `json:"heap_alloc"` // live heap objects (after a GC: reachable ones)
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"` // goroutine stacks
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
}

// ReadMem returns this process's MemSnapshot, after a full garbage
// collection if gc.
func ReadMem(gc bool) MemSnapshot {
	if gc {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return MemSnapshot{
		HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, Sys: m.Sys,
		NumGC: m.NumGC, Goroutines: runtime.NumGoroutine(),
	}
}
