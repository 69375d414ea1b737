// Package testpki makes certificate authorities in memory for tests and
// benchmarks: ECDSA P-256 keys, certificates valid from an hour ago for a
// day, nothing read from files. tiotest.PKI, the TLS benchmarks and the
// TLS engine's own tests are built on it.
package testpki

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
	"time"
)

// Authority is a certificate authority. Its methods may be called from any
// goroutine.
type Authority struct {
	CA   *x509.Certificate
	Pool *x509.CertPool // trusts CA alone

	key    *ecdsa.PrivateKey
	serial atomic.Int64 // the last serial number issued; the CA's is 1
}

// New makes an authority whose certificate's common name is name.
func New(name string) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := template(1, name)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	a := &Authority{CA: ca, Pool: x509.NewCertPool(), key: key}
	a.Pool.AddCert(ca)
	a.serial.Store(1)
	return a, nil
}

// Server issues a server certificate for names, host names or IP addresses
// (the first is also the subject's common name; none: "localhost",
// 127.0.0.1 and ::1). Serial numbers count up from 2, one per certificate
// issued, so a reloaded certificate is told apart by its serial.
func (a *Authority) Server(names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1", "::1"}
	}
	tmpl := template(a.serial.Add(1), names[0])
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return a.issue(tmpl)
}

// Client issues a client certificate whose subject's common name is cn.
func (a *Authority) Client(cn string) (tls.Certificate, error) {
	tmpl := template(a.serial.Add(1), cn)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return a.issue(tmpl)
}

// CAPEM returns the authority's certificate in PEM, for peers that read it
// from a file (Node's ca option, a browser's trust store, a -ca flag).
func (a *Authority) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.CA.Raw})
}

// WriteFiles writes the authority's certificate, cert's chain and cert's
// key as PEM files ca.pem, cert.pem and key.pem in dir, and returns their
// paths: what a server's -cert and -key flags take.
func (a *Authority) WriteFiles(dir string, cert tls.Certificate) (caFile, certFile, keyFile string, err error) {
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", "", err
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path string
		data []byte
	}{
		{caFile, a.CAPEM()},
		{certFile, chain},
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return caFile, certFile, keyFile, nil
}

func template(serial int64, cn string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func (a *Authority) issue(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.CA, &key.PublicKey, a.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
