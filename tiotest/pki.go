package tiotest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/tiogo/tio/internal/testpki"
)

// PKI is a certificate authority made in memory for a test, to serve and
// dial TLS without files or a real certificate: its certificates are valid
// for a day, signed with ECDSA P-256, and trusted by Pool alone. Its
// methods fail the test on an error.
type PKI struct {
	// CA is the authority's certificate; Pool trusts it and nothing else.
	CA   *x509.Certificate
	Pool *x509.CertPool

	t testing.TB
	a *testpki.Authority
}

// NewPKI makes a certificate authority, failing the test on an error.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	a, err := testpki.New("tiotest CA " + t.Name())
	if err != nil {
		t.Fatalf("tiotest: CA: %v", err)
	}
	return &PKI{CA: a.CA, Pool: a.Pool, t: t, a: a}
}

// Certificate issues a server certificate for names (host names or IP
// addresses; default "localhost", 127.0.0.1 and ::1). Each call issues a
// new one, with a serial number of its own (a reloaded certificate is told
// apart by it).
func (p *PKI) Certificate(names ...string) tls.Certificate {
	p.t.Helper()
	c, err := p.a.Server(names...)
	if err != nil {
		p.t.Fatalf("tiotest: certificate: %v", err)
	}
	return c
}

// ClientCertificate issues a client certificate whose subject's common
// name is cn.
func (p *PKI) ClientCertificate(cn string) tls.Certificate {
	p.t.Helper()
	c, err := p.a.Client(cn)
	if err != nil {
		p.t.Fatalf("tiotest: certificate: %v", err)
	}
	return c
}

// ServerConfig returns a tls.Config that serves a new Certificate().
func (p *PKI) ServerConfig() *tls.Config {
	p.t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{p.Certificate()}}
}

// ClientConfig returns a tls.Config that trusts the authority alone.
func (p *PKI) ClientConfig() *tls.Config { return &tls.Config{RootCAs: p.Pool} }

// CAPEM returns the authority's certificate in PEM, for clients that read
// it from a file (Node's ca option, a browser's trust store).
func (p *PKI) CAPEM() []byte { return p.a.CAPEM() }

// WriteFiles writes the authority's certificate and cert (its chain and
// its key) as PEM files in dir, and returns their paths: what a server's
// -cert and -key flags take.
func (p *PKI) WriteFiles(dir string, cert tls.Certificate) (caFile, certFile, keyFile string) {
	p.t.Helper()
	caFile, certFile, keyFile, err := p.a.WriteFiles(dir, cert)
	if err != nil {
		p.t.Fatalf("tiotest: %v", err)
	}
	return caFile, certFile, keyFile
}
