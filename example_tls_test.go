package tio_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
)

// A server that speaks TLS and cleartext on one port; a handler sees the
// connection's TLS state. In production the certificate comes from files:
// tls.LoadX509KeyPair("fullchain.pem", "privkey.pem"), or GetCertificate to
// reload it without a restart.
func ExampleWithTLS() {
	cert, roots := selfSigned("localhost")
	mux := handler.NewMux()
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		cs, ok := ch.TLS()
		_ = ch.Send(&codec.Packet{Type: 1, Body: fmt.Appendf(nil, "tls=%v %s %s", ok, tls.VersionName(cs.Version), cs.ServerName)})
	}))
	srv := tio.NewServer("127.0.0.1:0", mux, tio.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	// A binary-protocol client over TLS (a browser would open wss:// to the
	// same port).
	c, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := tbin.New(tbin.Config{}).Encode([]byte{tbin.TagHandshake}, &codec.Packet{Type: 1})
	_, _ = c.Write(req)
	head := make([]byte, 1+tbin.HeaderSize)
	_, _ = io.ReadFull(c, head)
	body := make([]byte, int(head[len(head)-1]))
	_, _ = io.ReadFull(c, body)
	fmt.Printf("%s\n", body)
	// Output: tls=true TLS 1.3 localhost
}

// selfSigned makes a certificate for name, and a pool that trusts it.
func selfSigned(name string) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}
