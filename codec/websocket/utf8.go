package websocket

// utf8State is the state of an incremental UTF-8 validator: 0 means "at a
// character boundary"; other values say which continuation bytes may follow.
// Validating piece by piece lets a text message fail as soon as an invalid
// byte arrives, and lets a code point be split across fragments.
type utf8State uint8

const (
	utf8Accept utf8State = iota // at a boundary
	utf8Need1                   // one continuation byte 80..BF
	utf8Need2                   // two continuation bytes
	utf8Need3                   // three continuation bytes
	utf8E0                      // after E0: A0..BF, then one more
	utf8ED                      // after ED: 80..9F (no surrogates), then one more
	utf8F0                      // after F0: 90..BF, then two more
	utf8F4                      // after F4: 80..8F (≤ U+10FFFF), then two more
	utf8Reject
)

// validate advances s over b. It returns utf8Reject as soon as b cannot be
// part of valid UTF-8.
func (s utf8State) validate(b []byte) utf8State {
	i := 0
	for i < len(b) {
		if s == utf8Accept {
			// ASCII fast path, eight bytes at a time.
			for i+8 <= len(b) {
				x := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
					uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
				if x&0x8080808080808080 != 0 {
					break
				}
				i += 8
			}
			if i == len(b) {
				return s
			}
		}
		c := b[i]
		i++
		switch s {
		case utf8Accept:
			switch {
			case c < 0x80:
			case c >= 0xC2 && c <= 0xDF:
				s = utf8Need1
			case c == 0xE0:
				s = utf8E0
			case c == 0xED:
				s = utf8ED
			case c >= 0xE1 && c <= 0xEF:
				s = utf8Need2
			case c == 0xF0:
				s = utf8F0
			case c >= 0xF1 && c <= 0xF3:
				s = utf8Need3
			case c == 0xF4:
				s = utf8F4
			default:
				return utf8Reject
			}
		case utf8Need1, utf8Need2, utf8Need3:
			if c < 0x80 || c > 0xBF {
				return utf8Reject
			}
			s--
		case utf8E0:
			if c < 0xA0 || c > 0xBF {
				return utf8Reject
			}
			s = utf8Need1
		case utf8ED:
			if c < 0x80 || c > 0x9F {
				return utf8Reject
			}
			s = utf8Need1
		case utf8F0:
			if c < 0x90 || c > 0xBF {
				return utf8Reject
			}
			s = utf8Need2
		case utf8F4:
			if c < 0x80 || c > 0x8F {
				return utf8Reject
			}
			s = utf8Need2
		default:
			return utf8Reject
		}
	}
	return s
}
