package tlsconn

import (
	"crypto/tls"
	"errors"
	"testing"
)

// TestKeyUpdateFromClient: a TLS 1.3 client updates its keys and asks for
// ours to be updated too. The session handles it inside Input, on the loop:
// crypto/tls writes its own KeyUpdate from inside Read, and the records after
// it use the new keys both ways.
func TestKeyUpdateFromClient(t *testing.T) {
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	kl := &keyLog{}
	ccfg := clientFor(p, tls.VersionTLS13)
	ccfg.KeyLogWriter = kl
	mp := newMemPair(t, e, ccfg, 3, echo)
	mp.handshake()
	suite := mp.client.ConnectionState().CipherSuite
	secret := kl.secret(t, "CLIENT_TRAFFIC_SECRET_0")
	w := newSealer13(t, suite, secret)

	// The Go client has sent nothing under its application keys yet: our
	// record layer takes over its sequence numbers from 0.
	var before int
	mp.onLoop(func(d *driver) { before = d.outBytes })
	keyUpdate := []byte{24, 0, 0, 1, 1} // KeyUpdate, update_requested
	mp.cc.inject(w.seal(nil, recordHandshake, keyUpdate))
	mp.waitLoop("the server's KeyUpdate", func(d *driver) bool {
		if d.err != nil {
			t.Fatalf("session: %v", d.err)
		}
		return d.outBytes > before
	})

	// Data under the client's next secret, echoed under the server's next
	// secret: the Go client reads the server's KeyUpdate first.
	secret = nextSecret(t, suite, secret)
	w = newSealer13(t, suite, secret)
	mp.cc.inject(w.seal(nil, recordApplicationData, []byte("after the update")))
	expectRead(t, mp.client, []byte("after the update"))

	// And once more without asking for an answer.
	mp.cc.inject(w.seal(nil, recordHandshake, []byte{24, 0, 0, 1, 0}))
	w = newSealer13(t, suite, nextSecret(t, suite, secret))
	mp.cc.inject(w.seal(nil, recordApplicationData, []byte("second update")))
	expectRead(t, mp.client, []byte("second update"))
}

// TestPeerAlertAfterHandshake: a fatal alert from the client ends the
// session with ErrAlert.
func TestPeerAlertAfterHandshake(t *testing.T) {
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	kl := &keyLog{}
	ccfg := clientFor(p, tls.VersionTLS13)
	ccfg.KeyLogWriter = kl
	mp := newMemPair(t, e, ccfg, 0, echo)
	mp.handshake()
	w := newSealer13(t, mp.client.ConnectionState().CipherSuite, kl.secret(t, "CLIENT_TRAFFIC_SECRET_0"))
	mp.cc.inject(w.seal(nil, recordAlert, []byte{alertLevelFatal, 80}))
	err := mp.sessionErr()
	t.Log(err)
	if !errors.Is(err, ErrAlert) {
		t.Fatalf("session: %v, want ErrAlert", err)
	}
}

// TestRenegotiation: a TLS 1.2 client that sends a new ClientHello after the
// handshake is refused (crypto/tls servers never renegotiate): the session
// ends with ErrRenegotiation, after an alert, without a panic.
func TestRenegotiation(t *testing.T) {
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	kl := &keyLog{}
	ccfg := clientFor(p, tls.VersionTLS12)
	ccfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	ccfg.KeyLogWriter = kl
	mp := newMemPair(t, e, ccfg, 0, echo)
	mp.handshake()
	var fromClient, toClient []byte
	var before int
	mp.onLoop(func(d *driver) { fromClient, toClient, before = mp.fromClient, mp.toClient, d.outBytes })
	w := newSealer12(t, kl.secret(t, "CLIENT_RANDOM"), helloRandom(t, fromClient), helloRandom(t, toClient), 1)

	// First show that the keys are right: data gets through.
	mp.cc.inject(w.seal(nil, recordApplicationData, []byte("keys work")))
	expectRead(t, mp.client, []byte("keys work"))

	n := int(fromClient[3])<<8 | int(fromClient[4])
	clientHello := fromClient[recordHeaderLen : recordHeaderLen+n]
	mp.cc.inject(w.seal(nil, recordHandshake, clientHello))
	err := mp.sessionErr()
	t.Log(err)
	if !errors.Is(err, ErrRenegotiation) {
		t.Fatalf("session: %v, want ErrRenegotiation", err)
	}
	mp.onLoop(func(d *driver) {
		if d.outBytes <= before+len("keys work")+29 {
			t.Error("no alert for the peer")
		}
		if _, err := d.s.Write([]byte("x")); !errors.Is(err, ErrRenegotiation) {
			t.Errorf("Write after the failure: %v", err)
		}
	})
}

// TestRecordTooLargeAfterHandshake: a record header announcing more than
// crypto/tls accepts ends the session with ErrRecordTooLarge as soon as the
// header arrives (the body is never buffered). In TLS 1.2 a record of
// 2^14+2048 bytes is still legal; in TLS 1.3 the limit is 2^14+256.
func TestRecordTooLargeAfterHandshake(t *testing.T) {
	p := pki(t)
	for _, c := range []struct {
		v       uint16
		n       int
		tooLong bool
	}{
		{tls.VersionTLS12, maxCiphertext + 1, true},
		{tls.VersionTLS12, maxCiphertextTLS13 + 1, false}, // legal, but garbage: it does not decrypt
		{tls.VersionTLS13, maxCiphertextTLS13 + 1, true},
		{tls.VersionTLS13, 0xffff, true},
	} {
		e := newEngine(t, p.serverConfig(), Options{})
		mp := newMemPair(t, e, clientFor(p, c.v), 0, echo)
		mp.handshake()
		var before int
		mp.onLoop(func(d *driver) { before = d.outBytes })
		rec := append([]byte{recordApplicationData, 3, 3, byte(c.n >> 8), byte(c.n)}, make([]byte, 100)...)
		mp.cc.inject(rec)
		if c.tooLong {
			if err := mp.sessionErr(); !errors.Is(err, ErrRecordTooLarge) {
				t.Fatalf("%x, %d bytes: %v, want ErrRecordTooLarge", c.v, c.n, err)
			}
			mp.onLoop(func(d *driver) {
				if d.outBytes == before {
					t.Errorf("%x: no record_overflow alert", c.v)
				}
				if d.maxHeld > bufSize {
					t.Errorf("held %d bytes", d.maxHeld)
				}
			})
			continue
		}
		// The body is awaited, then fails to decrypt.
		mp.onLoop(func(d *driver) {
			if d.err != nil {
				t.Fatalf("%x, %d bytes: %v before the body", c.v, c.n, d.err)
			}
		})
		mp.cc.inject(make([]byte, c.n-100))
		if err := mp.sessionErr(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%x, %d bytes: %v, want ErrProtocol", c.v, c.n, err)
		}
	}
}

// TestGarbageAfterHandshake: records that do not decrypt end the session
// with ErrProtocol.
func TestGarbageAfterHandshake(t *testing.T) {
	p := pki(t)
	for _, v := range versions {
		e := newEngine(t, p.serverConfig(), Options{})
		mp := newMemPair(t, e, clientFor(p, v.v), 0, echo)
		mp.handshake()
		mp.cc.inject(append([]byte{recordApplicationData, 3, 3, 0, 40}, make([]byte, 40)...))
		if err := mp.sessionErr(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("%s: %v, want ErrProtocol", v.name, err)
		}
	}
}
