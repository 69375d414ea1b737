package tiotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a certificate authority made in memory for a test, to serve and
// dial TLS without files or a real certificate: its certificates are valid
// for a day, signed with ECDSA P-256, and trusted by Pool alone.
type PKI struct {
	// CA is the authority's certificate; Pool trusts it and nothing else.
	CA   *x509.Certificate
	Pool *x509.CertPool

	t      testing.TB
	key    *ecdsa.PrivateKey
	serial atomic.Int64
}

// NewPKI makes a certificate authority, failing the test on an error.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tiotest: CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tiotest CA " + t.Name()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("tiotest: CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tiotest: CA certificate: %v", err)
	}
	p := &PKI{CA: ca, Pool: x509.NewCertPool(), t: t, key: key}
	p.Pool.AddCert(ca)
	p.serial.Store(1)
	return p
}

// Certificate issues a server certificate for names (host names or IP
// addresses; default "localhost", 127.0.0.1 and ::1). Each call issues a
// new one, with a serial number of its own (a reloaded certificate is told
// apart by it).
func (p *PKI) Certificate(names ...string) tls.Certificate {
	p.t.Helper()
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1", "::1"}
	}
	tmpl := p.template(names[0])
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return p.issue(tmpl)
}

// ClientCertificate issues a client certificate whose subject's common
// name is cn.
func (p *PKI) ClientCertificate(cn string) tls.Certificate {
	p.t.Helper()
	tmpl := p.template(cn)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return p.issue(tmpl)
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
func (p *PKI) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.CA.Raw})
}

// WriteFiles writes the authority's certificate and cert (its chain and
// its key) as PEM files in dir, and returns their paths: what a server's
// -cert and -key flags take.
func (p *PKI) WriteFiles(dir string, cert tls.Certificate) (caFile, certFile, keyFile string) {
	p.t.Helper()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		p.t.Fatalf("tiotest: key: %v", err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{
		caFile:   p.CAPEM(),
		certFile: chain,
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			p.t.Fatalf("tiotest: %v", err)
		}
	}
	return caFile, certFile, keyFile
}

func (p *PKI) template(cn string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: big.NewInt(p.serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func (p *PKI) issue(tmpl *x509.Certificate) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatalf("tiotest: key: %v", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatalf("tiotest: certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatalf("tiotest: certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
