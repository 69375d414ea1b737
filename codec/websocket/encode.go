package websocket

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// msgEncoder is tio's DEFLATE encoder (RFC 1951) for a message compressed
// on its own (no context takeover) at level 1: one block for the whole
// message, LZ77 matches found greedily through a hash table of 4-byte
// sequences, then either the fixed codes or codes built for the message,
// whichever is shorter. It ends the block the way a sync flush does,
// without the 00 00 FF FF that RFC 7692 removes.
//
// It spends on a small message what klauspost/compress's level 1 spends on
// a large one per byte: klauspost's Huffman code construction (a
// length-limited package-merge over every symbol) costs several
// microseconds a block, most of the time of a 1 KiB message. Here the
// codes are built with Moffat and Katajainen's in-place algorithm on the
// sorted frequencies, and limited to 15 bits by halving the frequencies in
// the rare message that needs it.
//
// An encoder is about 22 KB (16 KB of it the hash table), against about
// 1 MB for a klauspost level-1 writer; the codec pools them. Messages longer
// than msgEncoderMax go to klauspost's, which is as fast from about 4 KiB
// on and compresses longer ones better.
type msgEncoder struct {
	table [1 << encHashBits]uint32 // position + off of the last sequence with each hash; below off: none
	off   uint32                   // added to positions in table: entries of earlier messages fall under it

	toks  []uint32 // literals (the byte) and matches (tokMatch | codes and extra bits)
	src   []byte   // the message when it comes in two pieces
	lit   [286]uint32
	dist  [30]uint32
	clen  [19]uint32
	llens [286 + 30]uint8 // literal/length then distance code lengths
	clens [19]uint8
	lcode [286]uint16 // bit-reversed codes
	dcode [30]uint16
	ccode [19]uint16
	rle   [286 + 30]uint16 // the code length code's symbols: sym | extra<<5
	all   [286 + 30]uint8  // the code lengths written
	work  [2 * 286]uint32

	acc  uint64 // bits not yet appended, least significant first
	nacc uint
	out  []byte
}

const (
	encHashBits   = 12
	msgEncoderMax = 4 << 10 // longest message msgEncoder compresses
	tokMatch      = 1 << 31
)

// lengthCode maps a match length − 3 to its length code − 257.
var lengthCode = func() (t [256]uint8) {
	for c := range lenBase {
		for l := int(lenBase[c]); l < int(lenBase[c])+1<<lenExtra[c] && l <= maxMatch; l++ {
			t[l-3] = uint8(c)
		}
	}
	t[255] = 28 // 258 has a code of its own
	return t
}()

// distCode returns the distance code of a distance from 1 to 32768.
func distCode(d int) int {
	x := uint32(d - 1)
	if x < 4 {
		return int(x)
	}
	nb := bits.Len32(x) - 1
	return 2*nb + int(x>>(nb-1)&1)
}

// The fixed codes' lengths (RFC 1951 section 3.2.6; the inflater's too) and bit-reversed codes.
var fixedLens, fixedCodes = func() (l [288]uint8, c [288]uint16) {
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	count := countLens(l[:])
	assignCodes(l[:], c[:], &count)
	return l, c
}()

var fixedDistCodes = func() (c [30]uint16) {
	var l [30]uint8
	for i := range l {
		l[i] = 5
	}
	count := countLens(l[:])
	assignCodes(l[:], c[:], &count)
	return c
}()

// assignCodes gives the canonical code of RFC 1951 section 3.2.2 to each
// symbol with a length, bit-reversed for an LSB-first bit writer; count
// holds the number of codes of each length (count[0] is ignored).
func assignCodes(lens []uint8, codes []uint16, count *[maxBits + 1]uint16) {
	var next [maxBits + 1]uint16
	code := uint16(0)
	for b := 1; b <= maxBits; b++ {
		c := count[b-1]
		if b == 1 {
			c = 0
		}
		code = (code + c) << 1
		next[b] = code
	}
	for s, l := range lens {
		if l != 0 {
			codes[s] = bits.Reverse16(next[l]) >> (16 - l)
			next[l]++
		}
	}
}

// countLens returns the number of codes of each length.
func countLens(lens []uint8) (count [maxBits + 1]uint16) {
	for _, l := range lens {
		count[l]++
	}
	return count
}

// huffLengths sets lens[s] to the length of symbol s's code in a minimum
// redundancy code for freq, at most limit bits (0 for a symbol that does not
// occur); a lone symbol gets one bit. It sets count to the number of codes
// of each length. work holds 2×len(freq) entries.
func huffLengths(freq []uint32, lens []uint8, limit int, work []uint32, count *[maxBits + 1]uint16) {
	clear(lens)
	*count = [maxBits + 1]uint16{}
	for shift := uint(0); ; shift++ {
		// Too long a code: flatten the frequencies and try again (rare:
		// 16 bits need a message of thousands of symbols skewed like
		// the Fibonacci numbers).
		keys := work[:0:len(freq)]
		for s, f := range freq {
			if f != 0 {
				keys = append(keys, max(f>>shift, 1)<<9|uint32(s))
			}
		}
		n := len(keys)
		switch n {
		case 0:
			return
		case 1:
			lens[keys[0]&511] = 1
			count[1] = 1
			return
		}
		a := work[len(freq) : len(freq)+n]
		sortKeys(keys, a)
		for i, k := range keys {
			a[i] = k >> 9
		}
		if inPlaceLengths(a) > uint32(limit) {
			continue
		}
		for i, k := range keys {
			lens[k&511] = uint8(a[i])
		}
		// The lengths fall along a: count them by runs.
		for i := 0; i < n; {
			l, j := a[i], i+1
			for j < n && a[j] == l {
				j++
			}
			count[l] = uint16(j - i)
			i = j
		}
		return
	}
}

// sortKeys sorts keys (frequency<<9 | symbol, in symbol order) ascending,
// using tmp (as long) as scratch. Past a few dozen keys it is a stable
// radix sort on the frequency, a byte at a time, which leaves equal
// frequencies in symbol order: the order slices.Sort gives, in about half
// its time for a message's literal/length code (a comparison sort was a
// quarter of a 1 KiB message's compression).
func sortKeys(keys, tmp []uint32) {
	if len(keys) <= 32 {
		slices.Sort(keys)
		return
	}
	var top uint32
	for _, k := range keys {
		top = max(top, k>>9)
	}
	src, dst := keys, tmp[:len(keys)]
	for shift := uint(9); shift < 32 && top>>(shift-9) != 0; shift += 8 {
		var count [256]uint16
		for _, k := range src {
			count[k>>shift&255]++
		}
		sum := uint16(0)
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range src {
			b := k >> shift & 255
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// inPlaceLengths replaces the frequencies a (ascending, at least two) by
// the lengths of a minimum-redundancy code for them, with Moffat and
// Katajainen's in-place algorithm, and returns the longest.
func inPlaceLengths(a []uint32) uint32 {
	n := len(a)
	// Phase 1: the tree, internal nodes replacing the leaves, each one's
	// weight then its parent's index.
	a[0] += a[1]
	root, leaf := 0, 2
	for next := 1; next < n-1; next++ {
		if leaf >= n || a[root] < a[leaf] {
			a[next] = a[root]
			a[root] = uint32(next)
			root++
		} else {
			a[next] = a[leaf]
			leaf++
		}
		if leaf >= n || (root < next && a[root] < a[leaf]) {
			a[next] += a[root]
			a[root] = uint32(next)
			root++
		} else {
			a[next] += a[leaf]
			leaf++
		}
	}
	// Phase 2: the internal nodes' depths.
	a[n-2] = 0
	for next := n - 3; next >= 0; next-- {
		a[next] = a[a[next]] + 1
	}
	// Phase 3: the leaves' depths, deepest first.
	avail, used, depth := 1, 0, uint32(0)
	root, next := n-2, n-1
	for avail > 0 {
		for root >= 0 && a[root] == depth {
			used++
			root--
		}
		for avail > used {
			a[next] = depth
			next--
			avail--
		}
		avail, used = 2*used, 0
		depth++
	}
	return a[0]
}

// put adds the n low bits of v to the output.
func (e *msgEncoder) put(v uint64, n uint) {
	e.acc |= v << e.nacc
	e.nacc += n
	if e.nacc >= 32 {
		e.out = binary.LittleEndian.AppendUint32(e.out, uint32(e.acc))
		e.acc >>= 32
		e.nacc -= 32
	}
}

// encode appends head and body, compressed as one message for a window of
// window bytes, to dst.
func (e *msgEncoder) encode(dst, head, body []byte, window int) []byte {
	src := body
	if len(head) > 0 {
		e.src = append(append(e.src[:0], head...), body...)
		src = e.src
	}
	e.match(src, window)
	e.out, e.acc, e.nacc = dst, 0, 0
	e.block()
	// The empty stored block of a sync flush: its header, to the byte; the
	// receiver adds its LEN and NLEN (RFC 7692's 00 00 FF FF).
	e.put(0, 3)
	for e.nacc > 0 {
		e.out = append(e.out, byte(e.acc))
		e.acc >>= 8
		e.nacc = max(e.nacc, 8) - 8
	}
	out := e.out
	e.out = nil
	if cap(e.src) > msgEncoderMax {
		e.src = nil
	}
	return out
}

// match turns src into tokens and counts the symbols.
func (e *msgEncoder) match(src []byte, window int) {
	e.lit, e.dist = [286]uint32{}, [30]uint32{}
	toks := e.toks[:0]
	if e.off > 1<<31 {
		e.table, e.off = [1 << encHashBits]uint32{}, 0
	}
	off := e.off + 1
	e.off = off + uint32(len(src))
	n := len(src)
	litStart, s := 0, 0
	for s+4 <= n {
		u := binary.LittleEndian.Uint32(src[s:])
		h := (u * 0x9E3779B1) >> (32 - encHashBits)
		v := e.table[h]
		e.table[h] = uint32(s) + off
		if v >= off {
			// c can be past s: a match cut at 258 bytes after extending
			// backwards ends before positions the table already holds.
			c := int(v - off)
			if d := s - c; d > 0 && d <= window && binary.LittleEndian.Uint32(src[c:]) == u {
				for s > litStart && c > 0 && src[s-1] == src[c-1] {
					s--
					c--
				}
				for _, b := range src[litStart:s] {
					e.lit[b]++
					toks = append(toks, uint32(b))
				}
				l := 4 + matchLen(src[s+4:], src[c+4:], maxMatch-4)
				d := s - c
				lc := lengthCode[l-3]
				dc := distCode(d)
				e.lit[257+int(lc)]++
				e.dist[dc]++
				toks = append(toks, tokMatch|uint32(lc)<<26|uint32(l-int(lenBase[lc]))<<21|uint32(dc)<<16|uint32(d-int(distBase[dc])))
				s += l
				litStart = s
				if s-2 > c && s+2 <= n {
					// Remember a sequence inside the match too.
					e.table[(binary.LittleEndian.Uint32(src[s-2:])*0x9E3779B1)>>(32-encHashBits)] = uint32(s-2) + off
				}
				continue
			}
		}
		s += 1 + (s-litStart)>>5 // past incompressible stretches faster
	}
	for _, b := range src[litStart:] {
		e.lit[b]++
		toks = append(toks, uint32(b))
	}
	e.lit[256] = 1
	e.toks = toks
}

// matchLen returns how many bytes a and b have in common at their start,
// at most limit.
func matchLen(a, b []byte, limit int) int {
	n := min(len(a), len(b), limit)
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)>>3
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// block writes the tokens as one non-final block, with the fixed codes or
// with codes of its own, whichever makes fewer bits.
func (e *msgEncoder) block() {
	extra := 0
	for c, f := range e.lit[257:] {
		extra += int(f) * int(lenExtra[c])
	}
	for c, f := range e.dist {
		extra += int(f) * int(distExtra[c])
	}
	fixed := 3 + extra
	for s, f := range e.lit {
		fixed += int(f) * int(fixedLens[s])
	}
	for _, f := range e.dist {
		fixed += int(f) * 5
	}

	llens, dlens := e.llens[:286], e.llens[286:]
	var lcount, dcount, ccount [maxBits + 1]uint16
	huffLengths(e.lit[:], llens, maxBits, e.work[:], &lcount)
	huffLengths(e.dist[:], dlens, maxBits, e.work[:], &dcount)
	nlit, ndist := 286, 30
	for llens[nlit-1] == 0 {
		nlit--
	}
	for ndist > 1 && dlens[ndist-1] == 0 {
		ndist--
	}
	if dlens[0] == 0 && ndist == 1 {
		dlens[0], dcount[1] = 1, 1 // no match: one distance code (RFC 1951 section 3.2.7)
	}
	// The code lengths, run-length coded.
	seq := e.rle[:0]
	e.clen = [19]uint32{}
	emit := func(sym, x uint16) {
		e.clen[sym]++
		seq = append(seq, sym|x<<5)
	}
	all := append(append(e.all[:0], llens[:nlit]...), dlens[:ndist]...)
	for i := 0; i < len(all); {
		l := all[i]
		run := 1
		for i+run < len(all) && all[i+run] == l {
			run++
		}
		i += run
		if l == 0 {
			for run >= 11 {
				r := min(run, 138)
				emit(18, uint16(r-11))
				run -= r
			}
			if run >= 3 {
				emit(17, uint16(run-3))
				run = 0
			}
		} else {
			emit(uint16(l), 0)
			run--
			for run >= 3 {
				r := min(run, 6)
				emit(16, uint16(r-3))
				run -= r
			}
		}
		for ; run > 0; run-- {
			emit(uint16(l), 0)
		}
	}
	huffLengths(e.clen[:], e.clens[:], 7, e.work[:], &ccount)
	nclen := 19
	for nclen > 4 && e.clens[clenOrder[nclen-1]] == 0 {
		nclen--
	}
	dynamic := 3 + 14 + 3*nclen + extra
	for _, x := range seq {
		sym := x & 31
		dynamic += int(e.clens[sym])
		switch sym {
		case 16:
			dynamic += 2
		case 17:
			dynamic += 3
		case 18:
			dynamic += 7
		}
	}
	for s, f := range e.lit[:nlit] {
		dynamic += int(f) * int(llens[s])
	}
	for s, f := range e.dist[:ndist] {
		dynamic += int(f) * int(dlens[s])
	}

	if fixed <= dynamic {
		e.put(1<<1, 3) // BFINAL 0, BTYPE 01
		e.tokens(fixedLens[:], fixedCodes[:], fixedDistCodes[:], nil)
		return
	}
	e.put(2<<1, 3) // BFINAL 0, BTYPE 10
	e.put(uint64(nlit-257)|uint64(ndist-1)<<5|uint64(nclen-4)<<10, 14)
	assignCodes(e.clens[:], e.ccode[:], &ccount)
	for _, s := range clenOrder[:nclen] {
		e.put(uint64(e.clens[s]), 3)
	}
	for _, x := range seq {
		sym := x & 31
		e.put(uint64(e.ccode[sym]), uint(e.clens[sym]))
		switch sym {
		case 16:
			e.put(uint64(x>>5), 2)
		case 17:
			e.put(uint64(x>>5), 3)
		case 18:
			e.put(uint64(x>>5), 7)
		}
	}
	assignCodes(llens[:nlit], e.lcode[:], &lcount)
	assignCodes(dlens[:ndist], e.dcode[:], &dcount)
	e.tokens(llens, e.lcode[:], e.dcode[:], dlens)
}

// tokens writes the tokens and the end of block with the given codes;
// dlens nil: every distance code is 5 bits.
func (e *msgEncoder) tokens(llens []uint8, lcode, dcode []uint16, dlens []uint8) {
	// The bit writer in registers: at most 48 bits a token, flushed 32 at
	// a time, into room made beforehand (each token makes at most 6 bytes).
	acc, nacc := e.acc, e.nacc
	out := slices.Grow(e.out, 6*len(e.toks)+16)
	w := len(out)
	out = out[:cap(out)]
	for _, t := range e.toks {
		if t&tokMatch == 0 {
			acc |= uint64(lcode[t]) << nacc
			nacc += uint(llens[t])
		} else {
			lc := t >> 26 & 31
			ll := uint(llens[257+lc])
			acc |= (uint64(lcode[257+lc]) | uint64(t>>21&31)<<ll) << nacc
			nacc += ll + uint(lenExtra[lc])
			dc := t >> 16 & 31
			dl := uint(5)
			if dlens != nil {
				dl = uint(dlens[dc])
			}
			if nacc >= 32 {
				binary.LittleEndian.PutUint32(out[w:], uint32(acc))
				w += 4
				acc >>= 32
				nacc -= 32
			}
			acc |= (uint64(dcode[dc]) | uint64(t&0x1FFF)<<dl) << nacc
			nacc += dl + uint(distExtra[dc])
		}
		if nacc >= 32 {
			binary.LittleEndian.PutUint32(out[w:], uint32(acc))
			w += 4
			acc >>= 32
			nacc -= 32
		}
	}
	e.acc, e.nacc, e.out = acc, nacc, out[:w]
	e.put(uint64(lcode[256]), uint(llens[256]))
}
