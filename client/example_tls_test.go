package client_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// ExampleWithTLS dials a tio server over wss:// with permessage-deflate:
// the client trusts the server's certificate through WithTLS's RootCAs
// (the server name is the URL's host), offers compression with
// WithCompression, and sends a large message that goes out compressed,
// then encrypted — both on the client's event loops.
func ExampleWithTLS() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cert, roots := exampleCertificate("localhost")
	deflate := websocket.Compression{Mode: websocket.CompressionNoContextTakeover}

	// A server with TLS and compression: it echoes every message.
	srv := tio.NewServer("127.0.0.1:0", handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }),
		tio.WithLogger(quiet),
		tio.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		tio.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}, Compression: deflate}))
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	echo := make(chan []byte, 1)
	c, err := client.New(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { echo <- bytes.Clone(p.Body) }),
		client.WithLogger(quiet),
		client.WithTLS(&tls.Config{RootCAs: roots}),
		client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}),
		client.WithCompression(deflate))
	if err != nil {
		panic(err)
	}
	defer c.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	port := strconv.Itoa(srv.Addr().(*net.TCPAddr).Port)
	cn, err := c.Dial(ctx, "wss://localhost:"+port+"/echo")
	if err != nil {
		panic(err)
	}
	cs, _ := cn.Channel().TLS()
	fmt.Println(tls.VersionName(cs.Version), cs.PeerCertificates[0].DNSNames[0])

	msg := bytes.Repeat([]byte("permessage-deflate, then TLS. "), 2000) // 60,000 bytes
	before := c.Stats().Traffic.BytesOut
	if err := cn.Send(websocket.TextBytes(msg)); err != nil {
		panic(err)
	}
	got := <-echo
	sent := c.Stats().Traffic.BytesOut - before
	fmt.Printf("echoed %d bytes; %d went out: %v\n", len(got), len(msg), sent < 2000)
	// Output:
	// TLS 1.3 localhost
	// echoed 60000 bytes; 60000 went out: true
}

// exampleCertificate makes a self-signed certificate for name, and a pool
// that trusts it (a real server loads its own: tls.LoadX509KeyPair).
func exampleCertificate(name string) (tls.Certificate, *x509.CertPool) {
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
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}
