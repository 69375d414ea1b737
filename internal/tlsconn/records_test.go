package tlsconn

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strings"
	"sync"
	"testing"
)

// This file is a minimal client-side record layer, for the tests that must
// send what crypto/tls's client never sends: a KeyUpdate, a renegotiating
// ClientHello, a fatal alert. The keys come from the client's KeyLogWriter.

// keyLog collects NSS key log lines.
type keyLog struct {
	mu    sync.Mutex
	lines map[string][]byte // label → secret, for the last connection
}

func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lines == nil {
		k.lines = make(map[string][]byte)
	}
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		secret, err := hex.DecodeString(f[2])
		if err == nil {
			k.lines[f[0]] = secret
		}
	}
	return len(p), nil
}

func (k *keyLog) secret(t testing.TB, label string) []byte {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.lines[label]
	if !ok {
		t.Fatalf("no %s in the key log", label)
	}
	return s
}

// suiteHash returns the hash and key length of a TLS 1.3 AES-GCM suite.
func suiteHash(t testing.TB, suite uint16) (func() hash.Hash, int) {
	t.Helper()
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		return sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		return sha512.New384, 32
	}
	t.Skipf("suite %s: the test's record layer does only AES-GCM", tls.CipherSuiteName(suite))
	return nil, 0
}

// expandLabel is HKDF-Expand-Label (RFC 8446 §7.1).
func expandLabel(t testing.TB, h func() hash.Hash, secret []byte, label string, length int) []byte {
	t.Helper()
	info := binary.BigEndian.AppendUint16(nil, uint16(length))
	info = append(info, byte(len("tls13 ")+len(label)))
	info = append(info, "tls13 "+label...)
	info = append(info, 0) // no context
	out, err := hkdf.Expand(h, secret, string(info), length)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sealer13 protects TLS 1.3 records with one traffic secret.
type sealer13 struct {
	aead cipher.AEAD
	iv   []byte
	seq  uint64
}

func newSealer13(t testing.TB, suite uint16, secret []byte) *sealer13 {
	t.Helper()
	h, keyLen := suiteHash(t, suite)
	block, err := aes.NewCipher(expandLabel(t, h, secret, "key", keyLen))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &sealer13{aead: aead, iv: expandLabel(t, h, secret, "iv", 12)}
}

// nextSecret is the traffic secret after a KeyUpdate (RFC 8446 §7.2).
func nextSecret(t testing.TB, suite uint16, secret []byte) []byte {
	h, _ := suiteHash(t, suite)
	return expandLabel(t, h, secret, "traffic upd", len(secret))
}

// seal appends one record whose inner content type is typ.
func (s *sealer13) seal(dst []byte, typ byte, payload []byte) []byte {
	inner := append(append([]byte(nil), payload...), typ)
	nonce := append([]byte(nil), s.iv...)
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(s.seq >> (8 * i))
	}
	s.seq++
	n := len(inner) + s.aead.Overhead()
	hdr := []byte{recordApplicationData, 3, 3, byte(n >> 8), byte(n)}
	dst = append(dst, hdr...)
	return s.aead.Seal(dst, nonce, inner, hdr)
}

// prf12 is the TLS 1.2 PRF with SHA-256 (RFC 5246 §5).
func prf12(secret []byte, label string, seed []byte, n int) []byte {
	seed = append([]byte(label), seed...)
	mac := hmac.New(sha256.New, secret)
	mac.Write(seed)
	a := mac.Sum(nil)
	var out []byte
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(nil)
	}
	return out[:n]
}

// sealer12 protects TLS 1.2 records with AES-128-GCM (the client's write
// side of TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256).
type sealer12 struct {
	aead cipher.AEAD
	salt []byte
	seq  uint64
}

// newSealer12 derives the client's write key from the master secret and the
// two hellos' randoms. seq is the client's next sequence number (1 after its
// Finished).
func newSealer12(t testing.TB, master, clientRandom, serverRandom []byte, seq uint64) *sealer12 {
	t.Helper()
	kb := prf12(master, "key expansion", append(append([]byte(nil), serverRandom...), clientRandom...), 2*16+2*4)
	block, err := aes.NewCipher(kb[:16])
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &sealer12{aead: aead, salt: kb[32:36], seq: seq}
}

func (s *sealer12) seal(dst []byte, typ byte, payload []byte) []byte {
	explicit := binary.BigEndian.AppendUint64(nil, s.seq)
	nonce := append(append([]byte(nil), s.salt...), explicit...)
	aad := binary.BigEndian.AppendUint64(nil, s.seq)
	aad = append(aad, typ, 3, 3, byte(len(payload)>>8), byte(len(payload)))
	s.seq++
	n := len(explicit) + len(payload) + s.aead.Overhead()
	dst = append(dst, typ, 3, 3, byte(n>>8), byte(n))
	dst = append(dst, explicit...)
	return s.aead.Seal(dst, nonce, payload, aad)
}

// helloRandom returns the random of a ClientHello or ServerHello at the start
// of a flight (a plaintext handshake record).
func helloRandom(t testing.TB, flight []byte) []byte {
	t.Helper()
	const off = recordHeaderLen + 4 + 2
	if len(flight) < off+32 || flight[0] != recordHandshake {
		t.Fatalf("not a hello: % x", flight[:min(len(flight), 16)])
	}
	return append([]byte(nil), flight[off:off+32]...)
}
