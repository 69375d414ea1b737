package tlsconn

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"

	"github.com/tiogo/tio/internal/testpki"
)

// testPKI is a certificate authority made in-process, with the leaves the
// tests use. Nothing comes from files.
type testPKI struct {
	roots   *x509.CertPool  // trusts the authority
	server  tls.Certificate // localhost, 127.0.0.1, ::1; serial 2
	server2 tls.Certificate // the same names, serial 3: a reloaded certificate
	client  tls.Certificate // a client certificate; serial 4
	other   tls.Certificate // a client certificate from another authority
}

var pkiOnce = sync.OnceValues(newPKI)

func pki(t testing.TB) *testPKI {
	t.Helper()
	p, err := pkiOnce()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newPKI() (p *testPKI, err error) {
	ca, err := testpki.New("tio test CA")
	if err != nil {
		return nil, err
	}
	other, err := testpki.New("another CA")
	if err != nil {
		return nil, err
	}
	p = &testPKI{roots: ca.Pool}
	if p.server, err = ca.Server(); err != nil {
		return nil, err
	}
	if p.server2, err = ca.Server(); err != nil {
		return nil, err
	}
	if p.client, err = ca.Client("tio client"); err != nil {
		return nil, err
	}
	if p.other, err = other.Client("stranger"); err != nil {
		return nil, err
	}
	return p, nil
}

// serverConfig returns a server configuration with the test certificate.
func (p *testPKI) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}}
}

// clientConfig returns a client configuration that trusts the test CA.
func (p *testPKI) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: "localhost"}
}
