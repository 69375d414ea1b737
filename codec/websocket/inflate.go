package websocket

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// inflater is a DEFLATE decoder (RFC 1951) that is fed its input piece by
// piece, as a compressed message's frames arrive, and never waits for more:
// it decodes everything a piece completes and keeps the rest of the piece
// (at most 63 bits) in its bit buffer. The decoders of compress/flate and
// klauspost/compress pull their input from an io.Reader and cannot be
// paused in the middle of a symbol, which an event loop needs.
//
// Its output goes to a message buffer that it grows itself, never past the
// limit it is given: a deflate bomb costs what the limit allows and not a
// byte more. Back-references reach into the message decoded so far and, with
// context takeover, into the window of the messages before (hist).
//
// An inflater is about 3.6 KB. The codec pools them: a connection holds one
// only while a compressed message is arriving.
type inflater struct {
	bits  uint64 // input bits, least significant first; bits above nbits are zero
	nbits uint
	step  uint8
	final bool // the current block is the stream's last

	stored      int // bytes of the current stored block still to copy
	nlit, ndist int // a dynamic block's code counts
	nclen, i    int // code length codes, and the next length to read
	hl, hd      *huffman
	lens        [maxLit + maxDist]uint8 // a dynamic block's code lengths
	lit, dist   huffman                 // a dynamic block's codes; lit holds the code length code first
	window      int                     // if > 0, distances over it are errors (tests check encoders with it)
}

// Errors of the inflater. The decoder maps them to close codes.
var (
	errCorrupt  = errors.New("corrupt DEFLATE data")
	errInflated = errors.New("message inflates past the limit")
)

// inflater steps.
const (
	stepHeader    uint8 = iota // a block header is next
	stepStoredLen              // a stored block's LEN and NLEN are next (byte-aligned)
	stepStored                 // copying a stored block
	stepCounts                 // a dynamic block's HLIT, HDIST, HCLEN are next
	stepCodeLens               // reading the code length code's lengths
	stepLens                   // reading the literal/length and distance code lengths
	stepData                   // decoding a Huffman-coded block
	stepDone                   // after the final block: the rest of the message is ignored
)

const (
	maxLit   = 286 // literal/length codes a dynamic block may define
	maxDist  = 30  // distance codes a dynamic block may define
	maxBits  = 15  // longest code
	fastBits = 9   // codes this long or shorter are decoded by one table lookup
	fastSize = 1 << fastBits

	// symbol results besides a symbol
	symMore = -1 // more input bits are needed
	symBad  = -2 // no code matches: corrupt input

	maxMatch = 258
)

// huffman is a canonical Huffman code: a table for the codes of up to
// fastBits bits, and the counts and sorted symbols that decode the longer
// ones bit by bit (puff.c's method; long codes are rare by construction).
type huffman struct {
	fast    [fastSize]uint16 // sym<<4 | length, indexed by the next input bits (mask); 0: a longer code, or none
	mask    uint64           // 2^min(fastBits, longest) − 1: a code without long codes fills only that much of fast
	count   [maxBits + 1]uint16
	syms    [288]uint16 // symbols by code, shortest codes first
	longest uint        // the longest code's length
}

// build makes h the code with the given lengths. It reports false for an
// over-subscribed code and for an incomplete one, except the two cases
// RFC 1951 encoders produce: no code at all, and a single code of one bit.
func (h *huffman) build(lens []uint8) bool {
	h.count = [maxBits + 1]uint16{}
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	left, longest := 1, 0
	for l := 1; l <= maxBits; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return false
		}
		if h.count[l] != 0 {
			longest = l
		}
	}
	if left > 0 && longest > 1 {
		return false
	}
	h.longest = uint(longest)
	var offs [maxBits + 2]uint16
	for l := 1; l <= maxBits; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for s, l := range lens {
		if l != 0 {
			h.syms[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	size := 1 << min(fastBits, longest)
	h.mask = uint64(size - 1)
	clear(h.fast[:size])
	code, idx := 0, 0
	for l := 1; l <= min(fastBits, longest); l++ {
		for range int(h.count[l]) {
			e := h.syms[idx]<<4 | uint16(l)
			for j := int(bits.Reverse16(uint16(code)) >> (16 - l)); j < size; j += 1 << l {
				h.fast[j] = e
			}
			code++
			idx++
		}
		code <<= 1
	}
	return true
}

// slow decodes a code longer than fastBits, or finds none, from b's nb
// bits. It returns the symbol and the code's length, symMore, or symBad
// (as soon as the bits match no code, like compress/flate).
func (h *huffman) slow(b uint64, nb uint) (int, uint) {
	code, first, index := 0, 0, 0
	for l := uint(1); l <= h.longest; l++ {
		if l > nb {
			return symMore, 0
		}
		code |= int(b & 1)
		b >>= 1
		n := int(h.count[l])
		if code-n < first {
			return int(h.syms[index+code-first]), l
		}
		index += n
		first = (first + n) << 1
		code <<= 1
	}
	return symBad, 0
}

// The fixed codes of RFC 1951 section 3.2.6.
var fixedLit, fixedDist = func() (lit, dist *huffman) {
	l := fixedLens // the encoder's (encode.go)
	var d [32]uint8
	for i := range d {
		d[i] = 5
	}
	lit, dist = new(huffman), new(huffman)
	lit.build(l[:])
	dist.build(d[:])
	return lit, dist
}()

var (
	lenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// reset readies f for a new stream.
func (f *inflater) reset() {
	f.bits, f.nbits, f.step, f.final, f.stored, f.hl, f.hd = 0, 0, stepHeader, false, 0, nil, nil
}

// boundary reports whether f stopped between blocks with no input left
// over, or after the final block: where a message must leave it.
func (f *inflater) boundary() bool {
	return f.step == stepDone || (f.step == stepHeader && f.nbits == 0)
}

// refill moves input bytes into the bit buffer until it holds at least 56
// bits or the input is used up, and returns the new input position. No code
// and its extra bits take more than 48 bits.
func (f *inflater) refill(in []byte, pos int) int {
	if f.nbits <= 56 && len(in)-pos >= 8 {
		k := (63 - f.nbits) >> 3
		f.bits |= (binary.LittleEndian.Uint64(in[pos:]) << f.nbits) & (1<<(f.nbits+8*k) - 1)
		f.nbits += 8 * k
		return pos + int(k)
	}
	for f.nbits <= 56 && pos < len(in) {
		f.bits |= uint64(in[pos]) << f.nbits
		f.nbits += 8
		pos++
	}
	return pos
}

func (f *inflater) drop(n uint) { f.bits >>= n; f.nbits -= n }

// endBlock moves on after a block.
func (f *inflater) endBlock() {
	if f.final {
		f.step = stepDone
	} else {
		f.step = stepHeader
	}
}

// grow makes room for n more bytes in o (len(o)+n must not pass limit),
// never for more than limit bytes in all: doubling, so that a message costs
// at most twice its size in allocations, and capped, so that a bomb costs
// at most the limit.
func grow(o []byte, n, limit int) []byte {
	need := len(o) + n
	if need <= cap(o) {
		return o
	}
	c := min(max(2*cap(o), need, 512), limit)
	b := make([]byte, len(o), c)
	copy(b, o)
	return b
}

// inflate decodes all of in, appending to *out. hist is the window before
// *out (context takeover), or nil. It returns errInflated as soon as the
// output would pass limit bytes, errCorrupt for invalid data, and nil when
// it has used all of in, whether or not the stream is complete. After an
// error f must be reset before it is used again.
func (f *inflater) inflate(in []byte, out *[]byte, hist []byte, limit int) error {
	o, pos := *out, 0
	var err error
	for err == nil {
		switch f.step {
		case stepHeader:
			pos = f.refill(in, pos)
			if f.nbits < 3 {
				*out = o
				return nil
			}
			f.final = f.bits&1 != 0
			typ := (f.bits >> 1) & 3
			f.drop(3)
			switch typ {
			case 0:
				f.drop(f.nbits & 7) // to the byte boundary
				f.step = stepStoredLen
			case 1:
				f.hl, f.hd, f.step = fixedLit, fixedDist, stepData
			case 2:
				f.step = stepCounts
			default:
				err = errCorrupt
			}
		case stepStoredLen:
			pos = f.refill(in, pos)
			if f.nbits < 32 {
				*out = o
				return nil
			}
			n, nn := f.bits&0xFFFF, (f.bits>>16)&0xFFFF
			if n != ^nn&0xFFFF {
				err = errCorrupt
				break
			}
			f.drop(32)
			f.stored, f.step = int(n), stepStored
		case stepStored:
			if f.stored > limit-len(o) {
				err = errInflated
				break
			}
			o = grow(o, f.stored, limit)
			for f.stored > 0 && f.nbits >= 8 {
				o = append(o, byte(f.bits))
				f.drop(8)
				f.stored--
			}
			take := min(f.stored, len(in)-pos)
			o = append(o, in[pos:pos+take]...)
			pos += take
			f.stored -= take
			if f.stored > 0 {
				*out = o
				return nil
			}
			f.endBlock()
		case stepCounts:
			pos = f.refill(in, pos)
			if f.nbits < 14 {
				*out = o
				return nil
			}
			f.nlit = int(f.bits&0x1F) + 257
			f.ndist = int(f.bits>>5&0x1F) + 1
			f.nclen = int(f.bits>>10&0xF) + 4
			f.drop(14)
			if f.nlit > maxLit || f.ndist > maxDist {
				err = errCorrupt
				break
			}
			f.lens = [maxLit + maxDist]uint8{}
			f.i, f.step = 0, stepCodeLens
		case stepCodeLens:
			for ; f.i < f.nclen; f.i++ {
				if f.nbits < 3 {
					if pos = f.refill(in, pos); f.nbits < 3 {
						*out = o
						return nil
					}
				}
				f.lens[clenOrder[f.i]] = uint8(f.bits & 7)
				f.drop(3)
			}
			if !f.lit.build(f.lens[:19]) {
				err = errCorrupt
				break
			}
			f.i, f.step = 0, stepLens
		case stepLens:
			if pos, err = f.readLens(in, pos); err == nil && f.step == stepLens {
				*out = o
				return nil // more input is needed
			}
		case stepData:
			var more bool
			o, pos, more, err = f.data(in, pos, o, hist, limit)
			if more {
				*out = o
				return nil
			}
		case stepDone:
			*out = o
			return nil
		}
	}
	*out = o
	return err
}

// readLens reads a dynamic block's code lengths and builds its codes.
func (f *inflater) readLens(in []byte, pos int) (int, error) {
	n := f.nlit + f.ndist
	for f.i < n {
		if f.nbits < 14 {
			pos = f.refill(in, pos)
		}
		b, nb := f.bits, f.nbits
		var s int
		var l uint
		if e := f.lit.fast[b&f.lit.mask]; e != 0 && uint(e&15) <= nb {
			s, l = int(e>>4), uint(e&15)
		} else if s, l = f.lit.slow(b, nb); s < 0 {
			if s == symBad {
				return pos, errCorrupt
			}
			return pos, nil
		}
		if s < 16 {
			f.drop(l)
			f.lens[f.i] = uint8(s)
			f.i++
			continue
		}
		var rep int
		var prev uint8
		var eb uint
		switch s {
		case 16:
			if f.i == 0 {
				return pos, errCorrupt
			}
			rep, eb, prev = 3, 2, f.lens[f.i-1]
		case 17:
			rep, eb = 3, 3
		default:
			rep, eb = 11, 7
		}
		if nb < l+eb {
			return pos, nil // the symbol stays in the buffer until its extra bits come
		}
		f.drop(l)
		rep += int(f.bits & (1<<eb - 1))
		f.drop(eb)
		if f.i+rep > n {
			return pos, errCorrupt
		}
		for range rep {
			f.lens[f.i] = prev
			f.i++
		}
	}
	if f.lens[256] == 0 || !f.lit.build(f.lens[:f.nlit]) || !f.dist.build(f.lens[f.nlit:n]) {
		return pos, errCorrupt
	}
	f.hl, f.hd, f.step = &f.lit, &f.dist, stepData
	return pos, nil
}

// data decodes a Huffman-coded block's symbols until the block ends, the
// input runs out (more is true), or an error.
func (f *inflater) data(in []byte, pos int, o, hist []byte, limit int) (_ []byte, _ int, more bool, err error) {
	hl, hd := f.hl, f.hd
	b, nb := f.bits, f.nbits
	defer func() { f.bits, f.nbits = b, nb }()
	for {
		if nb < 48 {
			f.bits, f.nbits = b, nb
			pos = f.refill(in, pos)
			b, nb = f.bits, f.nbits
		}
		if cap(o)-len(o) < maxMatch && cap(o) < limit {
			o = grow(o, min(maxMatch, limit-len(o)), limit)
		}
		sb, snb := b, nb // to put a symbol back when its extra bits are missing
		var s int
		if e := hl.fast[b&hl.mask]; e != 0 && uint(e&15) <= nb {
			s = int(e >> 4)
			b >>= e & 15
			nb -= uint(e & 15)
		} else {
			var l uint
			if s, l = hl.slow(b, nb); s < 0 {
				if s == symBad {
					return o, pos, false, errCorrupt
				}
				return o, pos, true, nil
			}
			b >>= l
			nb -= l
		}
		if s < 256 {
			if len(o) >= limit {
				return o, pos, false, errInflated
			}
			o = append(o, byte(s))
			continue
		}
		if s == 256 {
			f.bits, f.nbits = b, nb
			f.endBlock()
			return o, pos, false, nil
		}
		s -= 257
		if s >= len(lenBase) {
			return o, pos, false, errCorrupt
		}
		length := int(lenBase[s])
		if eb := uint(lenExtra[s]); eb > 0 {
			if nb < eb {
				b, nb = sb, snb
				return o, pos, true, nil
			}
			length += int(b & (1<<eb - 1))
			b >>= eb
			nb -= eb
		}
		var ds int
		if e := hd.fast[b&hd.mask]; e != 0 && uint(e&15) <= nb {
			ds = int(e >> 4)
			b >>= e & 15
			nb -= uint(e & 15)
		} else {
			var l uint
			if ds, l = hd.slow(b, nb); ds < 0 {
				if ds == symBad {
					return o, pos, false, errCorrupt
				}
				b, nb = sb, snb
				return o, pos, true, nil
			}
			b >>= l
			nb -= l
		}
		if ds >= len(distBase) {
			return o, pos, false, errCorrupt
		}
		dist := int(distBase[ds])
		if eb := uint(distExtra[ds]); eb > 0 {
			if nb < eb {
				b, nb = sb, snb
				return o, pos, true, nil
			}
			dist += int(b & (1<<eb - 1))
			b >>= eb
			nb -= eb
		}
		if dist > len(o)+len(hist) || (f.window > 0 && dist > f.window) {
			return o, pos, false, errCorrupt
		}
		if length > limit-len(o) {
			return o, pos, false, errInflated
		}
		o = lzCopy(o, hist, dist, length)
	}
}

// lzCopy appends length bytes that start dist bytes back, in hist followed
// by o; o has the capacity.
func lzCopy(o, hist []byte, dist, length int) []byte {
	start := len(o) - dist
	if start < 0 {
		h := len(hist) + start
		n := min(length, -start)
		o = append(o, hist[h:h+n]...)
		if length -= n; length == 0 {
			return o
		}
		start = 0
	}
	// The bytes from start repeat with period dist: copy what is there,
	// doubling, until length is reached.
	for length > 0 {
		n := min(length, len(o)-start)
		o = append(o, o[start:start+n]...)
		length -= n
	}
	return o
}
