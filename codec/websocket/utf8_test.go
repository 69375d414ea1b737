package websocket

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// utf8Inputs returns valid and invalid inputs: every boundary code point,
// every kind of malformation, and random bytes and text.
func utf8Inputs() [][]byte {
	in := []string{
		"", "a", "hello, world", "héllo wörld", "日本語テキスト", "😀🎉", "Ελληνικά", "\x00\x7f",
		strings.Repeat("ascii run longer than eight bytes ", 3) + "é" + strings.Repeat("z", 17),
		// Boundaries of each encoding length and of the surrogate range.
		"\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff",
		"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
		// Invalid: lone continuation bytes and bytes never used.
		"\x80", "\xbf", "a\x80b", "\xc0", "\xc1", "\xf5", "\xf8", "\xfe", "\xff",
		// Overlong encodings.
		"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",
		// Surrogates and code points past U+10FFFF.
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80", "\xf7\xbf\xbf\xbf",
		// Truncated and interrupted sequences.
		"\xc3", "\xe2\x82", "\xf0\x9f\x98", "a\xe2\x82b", "\xe2\x82\xac\xe2", "\xf0\x9f\x98\x80\xf0\x9f",
		"\xc3\xc3\xa9", "\xe2\x28\xa1", "\xe2\x82\x28", "\xf0\x28\x8c\xbc", "\xf0\x90\x28\xbc", "\xf0\x28\x8c\x28",
		// Invalid bytes after a long ASCII run (the fast path's boundary).
		"01234567\xff", "0123456\xc3\xa9", "01234567\xc3\xa9x", "0123456789abcdef\xed\xa0\x80",
	}
	var out [][]byte
	for _, s := range in {
		out = append(out, []byte(s))
	}
	// Every code point at the edges of the ranges, and every two-byte pair
	// made of interesting bytes.
	edges := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	for _, a := range edges {
		for _, b := range edges {
			out = append(out, []byte{a, b}, []byte{a, b, 0x80}, []byte{a, b, 0x80, 0x80}, []byte{a, 0x90, b, 0x80})
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			switch r.IntN(4) {
			case 0:
				b[i] = byte(r.IntN(0x80))
			case 1:
				b[i] = 0x80 + byte(r.IntN(0x40))
			default:
				b[i] = byte(r.IntN(256))
			}
		}
		out = append(out, b)
	}
	for range 500 {
		var sb strings.Builder
		for range r.IntN(30) {
			c := rune(r.IntN(0x110000))
			if c >= 0xd800 && c <= 0xdfff {
				c = 'x'
			}
			sb.WriteRune(c)
		}
		out = append(out, []byte(sb.String()))
	}
	return out
}

// completable reports whether some bytes appended to p make valid UTF-8. A
// code point needs at most three more bytes, and each allowed range of a
// continuation byte contains 0x80, 0x90 or 0xA0.
func completable(p []byte) bool {
	cont := []byte{0x80, 0x90, 0xa0}
	var try func(b []byte, more int) bool
	try = func(b []byte, more int) bool {
		if utf8.Valid(b) {
			return true
		}
		if more == 0 {
			return false
		}
		for _, c := range cont {
			if try(append(b[:len(b):len(b)], c), more-1) {
				return true
			}
		}
		return false
	}
	return try(p, 3)
}

// TestUTF8Validator compares the incremental validator with utf8.Valid on
// every input, whole and split at every position, and checks that it fails
// fast: a prefix is rejected exactly when no bytes can complete it.
func TestUTF8Validator(t *testing.T) {
	for _, b := range utf8Inputs() {
		want := utf8.Valid(b)
		if got := utf8Accept.validate(b) == utf8Accept; got != want {
			t.Errorf("%q whole: valid=%v, want %v", b, got, want)
		}
		for i := 0; i <= len(b); i++ {
			s := utf8Accept.validate(b[:i])
			if (s == utf8Accept) != utf8.Valid(b[:i]) {
				t.Errorf("%q prefix %d: state %d, utf8.Valid %v", b, i, s, utf8.Valid(b[:i]))
			}
			if (s != utf8Reject) != completable(b[:i]) {
				t.Errorf("%q prefix %d: state %d, completable %v", b, i, s, completable(b[:i]))
			}
			if s != utf8Reject {
				s = s.validate(b[i:])
			}
			if (s == utf8Accept) != want {
				t.Errorf("%q split at %d: state %d, want valid=%v", b, i, s, want)
			}
			// Three pieces.
			for j := i; j <= len(b) && len(b) <= 24; j++ {
				s := utf8Accept.validate(b[:i])
				if s != utf8Reject {
					s = s.validate(b[i:j])
				}
				if s != utf8Reject {
					s = s.validate(b[j:])
				}
				if (s == utf8Accept) != want {
					t.Errorf("%q split at %d and %d: state %d, want valid=%v", b, i, j, s, want)
				}
			}
		}
	}
}

// TestUTF8RejectIsFinal: once rejected, no more bytes make the input valid.
func TestUTF8RejectIsFinal(t *testing.T) {
	for _, more := range []string{"", "a", "\x80", "\xa9", "\xc3\xa9"} {
		if s := utf8Reject.validate([]byte(more)); s != utf8Reject {
			t.Errorf("reject then %q: state %d", more, s)
		}
	}
}

// TestUTF8AllCodePoints encodes every code point and checks that each is
// accepted whole and byte by byte, and that every surrogate is rejected.
func TestUTF8AllCodePoints(t *testing.T) {
	var buf [4]byte
	for c := rune(0); c <= utf8.MaxRune; c++ {
		if c >= 0xd800 && c <= 0xdfff {
			b := []byte{0xe0 | byte(c>>12), 0x80 | byte(c>>6)&0x3f, 0x80 | byte(c)&0x3f}
			if utf8Accept.validate(b) != utf8Reject {
				t.Fatalf("surrogate %U accepted", c)
			}
			continue
		}
		n := utf8.EncodeRune(buf[:], c)
		if utf8Accept.validate(buf[:n]) != utf8Accept {
			t.Fatalf("%U rejected", c)
		}
		s := utf8Accept
		for i := range n {
			s = s.validate(buf[i : i+1])
		}
		if s != utf8Accept {
			t.Fatalf("%U byte by byte: state %d", c, s)
		}
	}
}

// FuzzUTF8 compares the validator with utf8.Valid on arbitrary bytes split
// at an arbitrary position.
func FuzzUTF8(f *testing.F) {
	f.Add([]byte("héllo"), uint8(2))
	f.Add([]byte("\xed\xa0\x80"), uint8(1))
	f.Add([]byte("\xf4\x8f\xbf\xbf"), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, at uint8) {
		i := int(at) % (len(b) + 1)
		s := utf8Accept.validate(b[:i])
		if (s != utf8Reject) != completable(b[:i]) {
			t.Fatalf("prefix %q: state %d", b[:i], s)
		}
		if s != utf8Reject {
			s = s.validate(b[i:])
		}
		if (s == utf8Accept) != utf8.Valid(b) {
			t.Fatalf("%q split at %d: state %d, utf8.Valid %v", b, i, s, utf8.Valid(b))
		}
	})
}
