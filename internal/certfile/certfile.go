// Package certfile serves a TLS certificate from PEM files, and reloads it
// on demand (a renewed certificate, without a restart): the examples'
// -cert and -key flags.
package certfile

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// Reloader holds the certificate of a pair of PEM files. Safe for
// concurrent use: GetCertificate runs on TLS handshake workers while
// Reload runs on a signal.
type Reloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads the certificate chain and the private key.
func Load(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. On an error the certificate served stays
// the one loaded before.
func (r *Reloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("certfile: %w", err)
	}
	r.cur.Store(&c)
	return nil
}

// Certificate returns the certificate served now.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load() }

// GetCertificate implements tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Config returns a server configuration that serves the files'
// certificate, reloaded by Reload, and offers HTTP/1.1 over ALPN.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, NextProtos: []string{"http/1.1"}}
}
