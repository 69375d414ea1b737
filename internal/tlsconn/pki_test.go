package tlsconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testPKI is a certificate authority made in-process, with the leaves the
// tests use. Nothing comes from files.
type testPKI struct {
	roots   *x509.CertPool // trusts ca
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	server  tls.Certificate // localhost, 127.0.0.1; serial 2
	server2 tls.Certificate // the same names, serial 3: a reloaded certificate
	client  tls.Certificate // a client certificate; serial 4
	other   tls.Certificate // a client certificate from another CA
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

func newPKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tio test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &testPKI{roots: x509.NewCertPool(), ca: ca, caKey: caKey}
	p.roots.AddCert(ca)
	leaf := func(serial int64, cn string, client bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		if client {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			tmpl.DNSNames, tmpl.IPAddresses = nil, nil
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, nil
	}
	if p.server, err = leaf(2, "localhost", false, ca, caKey); err != nil {
		return nil, err
	}
	if p.server2, err = leaf(3, "localhost", false, ca, caKey); err != nil {
		return nil, err
	}
	if p.client, err = leaf(4, "tio client", true, ca, caKey); err != nil {
		return nil, err
	}
	// A self-signed "CA" of its own signs the stranger's certificate.
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	otherTmpl := *caTmpl
	otherTmpl.Subject.CommonName = "another CA"
	der, err = x509.CreateCertificate(rand.Reader, &otherTmpl, &otherTmpl, &otherKey.PublicKey, otherKey)
	if err != nil {
		return nil, err
	}
	otherCA, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if p.other, err = leaf(5, "stranger", true, otherCA, otherKey); err != nil {
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
