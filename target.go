package tio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tiogo/tio/channel"
)

// Target names who a send, a close or a query is about, or what a channel is
// bound to: one channel (by id), a set of channels, a user, a group, a token,
// a business id, an IP address, or every channel. Make one with ID, IDs, Of,
// User, Group, Token, BsID, IP or All.
//
// A Target is a small comparable value (usable as a map key), printable
// (String: "user:alice"), and has a stable binary encoding (AppendBinary,
// UnmarshalBinary; docs/bindings.md specifies it), which the cluster relay
// publishes to other nodes. Channel ids are meaningful on the server that
// assigned them only.
type Target struct {
	kind TargetKind
	id   uint64 // KindID
	key  string // the name (user, group, token, business id); IP: its binary form; IDs: 8 bytes an id
}

// TargetKind is the kind of a Target. Its values are part of the binary
// encoding and never change.
type TargetKind uint8

// Kinds of target.
const (
	KindInvalid TargetKind = 0 // the zero Target: no one
	KindAll     TargetKind = 1 // every open channel
	KindID      TargetKind = 2 // one channel, by id
	KindIDs     TargetKind = 3 // a set of channels, by id
	KindUser    TargetKind = 4 // the channels bound to a user id (many per user)
	KindGroup   TargetKind = 5 // the channels in a group (many per group, many groups per channel)
	KindToken   TargetKind = 6 // the channels bound to a token (many per token)
	KindBsID    TargetKind = 7 // the channel bound to a business id (one per id)
	KindIP      TargetKind = 8 // the channels from an IP address
	numKinds    TargetKind = 9
)

var kindNames = [numKinds]string{"invalid", "all", "id", "ids", "user", "group", "token", "bsid", "ip"}

// String returns the kind's name: "all", "id", "ids", "user", "group",
// "token", "bsid", "ip" (or "invalid").
func (k TargetKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Bindable reports whether channels can be bound to targets of this kind
// (user, group, token, business id).
func (k TargetKind) Bindable() bool { return k >= KindUser && k <= KindBsID }

// All returns the target of every open channel.
func All() Target { return Target{kind: KindAll} }

// ID returns the target of the channel with the given id.
func ID(id uint64) Target { return Target{kind: KindID, id: id} }

// IDs returns the target of the channels with the given ids (duplicates
// count once). With one id it is ID(id).
func IDs(ids ...uint64) Target {
	if len(ids) == 1 {
		return ID(ids[0])
	}
	b := make([]byte, 0, 8*len(ids))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	return Target{kind: KindIDs, key: string(b)}
}

// Of returns the target of the given channels: ID(ch.ID()) for one, IDs for
// several.
func Of(chs ...*channel.Channel) Target {
	if len(chs) == 1 {
		return ID(chs[0].ID())
	}
	ids := make([]uint64, len(chs))
	for i, ch := range chs {
		ids[i] = ch.ID()
	}
	return IDs(ids...)
}

// User returns the target of the channels bound to the user id (a user may
// have many: a phone and two browser tabs).
func User(id string) Target { return Target{kind: KindUser, key: id} }

// Group returns the target of the channels in the group.
func Group(name string) Target { return Target{kind: KindGroup, key: name} }

// Token returns the target of the channels bound to the token.
func Token(token string) Target { return Target{kind: KindToken, key: token} }

// BsID returns the target of the channel bound to the business id.
func BsID(id string) Target { return Target{kind: KindBsID, key: id} }

// IP returns the target of the open channels from the address (an
// IPv4-mapped IPv6 address means its IPv4 address).
func IP(addr netip.Addr) Target {
	b, _ := addr.Unmap().MarshalBinary()
	return Target{kind: KindIP, key: string(b)}
}

// Kind returns the target's kind.
func (t Target) Kind() TargetKind { return t.kind }

// Key returns the name a user, group, token or business id target names, or
// "".
func (t Target) Key() string {
	if t.kind.Bindable() {
		return t.key
	}
	return ""
}

// IDs returns the ids of an ID or IDs target (a fresh slice), or nil.
func (t Target) IDs() []uint64 {
	switch t.kind {
	case KindID:
		return []uint64{t.id}
	case KindIDs:
		ids := make([]uint64, len(t.key)/8)
		for i := range ids {
			ids[i] = binary.BigEndian.Uint64([]byte(t.key[8*i : 8*i+8]))
		}
		return ids
	}
	return nil
}

// IP returns the address of an IP target, or the zero Addr.
func (t Target) IP() netip.Addr {
	var a netip.Addr
	if t.kind == KindIP {
		_ = a.UnmarshalBinary([]byte(t.key))
	}
	return a
}

// IsZero reports whether t is the zero Target, which names no one.
func (t Target) IsZero() bool { return t == Target{} }

// String returns the target in text form: "all", "id:42", "ids:1,2,3",
// "user:alice", "group:room-1", "token:…", "bsid:…", "ip:10.0.0.1". A
// name is written as it is: the form is for logs, and MarshalText's.
func (t Target) String() string {
	switch t.kind {
	case KindAll, KindInvalid:
		return t.kind.String()
	case KindID:
		return "id:" + strconv.FormatUint(t.id, 10)
	case KindIDs:
		var b strings.Builder
		b.WriteString("ids:")
		for i, id := range t.IDs() {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(id, 10))
		}
		return b.String()
	case KindIP:
		return "ip:" + t.IP().String()
	}
	return t.kind.String() + ":" + t.key
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (t Target) MarshalText() ([]byte, error) {
	if t.kind >= numKinds {
		return nil, fmt.Errorf("%w: kind %d", ErrInvalidTarget, t.kind)
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: it parses String's
// form (a name is everything after the first colon).
func (t *Target) UnmarshalText(b []byte) error {
	p, err := ParseTarget(string(b))
	if err == nil {
		*t = p
	}
	return err
}

// ParseTarget parses a target in String's form.
func ParseTarget(s string) (Target, error) {
	kind, rest, colon := strings.Cut(s, ":")
	bad := func() (Target, error) { return Target{}, fmt.Errorf("%w: %q", ErrInvalidTarget, s) }
	switch kind {
	case "all":
		if colon {
			return bad()
		}
		return All(), nil
	case "id":
		id, err := strconv.ParseUint(rest, 10, 64)
		if err != nil {
			return bad()
		}
		return ID(id), nil
	case "ids":
		var ids []uint64
		for _, f := range strings.Split(rest, ",") {
			id, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return bad()
			}
			ids = append(ids, id)
		}
		return Target{kind: KindIDs, key: IDs(ids...).key}, nil
	case "ip":
		a, err := netip.ParseAddr(rest)
		if err != nil {
			return bad()
		}
		return IP(a), nil
	}
	for k := KindUser; k <= KindBsID; k++ {
		if kind == k.String() && colon {
			return Target{kind: k, key: rest}, nil
		}
	}
	return bad()
}

// AppendBinary implements encoding.BinaryAppender. The encoding, stable
// across versions (docs/bindings.md): the kind byte, then for an id 8 bytes
// big-endian; for a set of ids their count as a uvarint and 8 bytes each;
// for a name or an IP address its length as a uvarint and its bytes (an IP
// address in netip.Addr's binary form: 4 or 16 bytes, then an IPv6 zone);
// nothing for all.
func (t Target) AppendBinary(b []byte) ([]byte, error) {
	if t.kind == KindInvalid || t.kind >= numKinds {
		return b, fmt.Errorf("%w: kind %d", ErrInvalidTarget, t.kind)
	}
	b = append(b, byte(t.kind))
	switch t.kind {
	case KindAll:
	case KindID:
		b = binary.BigEndian.AppendUint64(b, t.id)
	case KindIDs:
		b = binary.AppendUvarint(b, uint64(len(t.key)/8))
		b = append(b, t.key...)
	default:
		b = binary.AppendUvarint(b, uint64(len(t.key)))
		b = append(b, t.key...)
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler (see AppendBinary).
func (t Target) MarshalBinary() ([]byte, error) { return t.AppendBinary(nil) }

// UnmarshalBinary implements encoding.BinaryUnmarshaler: it decodes
// exactly one target (see AppendBinary); trailing bytes are an error.
func (t *Target) UnmarshalBinary(b []byte) error {
	d, n, err := DecodeTarget(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalidTarget, len(b)-n)
	}
	*t = d
	return nil
}

// MaxTargetKey bounds a name's length in the binary encoding and the
// number of ids of a set (so a decoder never allocates what a peer
// announces).
const MaxTargetKey = 64 << 10

// DecodeTarget decodes the target at the start of b (see AppendBinary) and
// returns it with the number of bytes it took.
func DecodeTarget(b []byte) (Target, int, error) {
	short := func() (Target, int, error) {
		return Target{}, 0, fmt.Errorf("%w: truncated encoding", ErrInvalidTarget)
	}
	if len(b) == 0 {
		return short()
	}
	k := TargetKind(b[0])
	n := 1
	switch {
	case k == KindInvalid || k >= numKinds:
		return Target{}, 0, fmt.Errorf("%w: unknown kind %d", ErrInvalidTarget, b[0])
	case k == KindAll:
		return All(), n, nil
	case k == KindID:
		if len(b) < n+8 {
			return short()
		}
		return ID(binary.BigEndian.Uint64(b[n:])), n + 8, nil
	}
	l, w := binary.Uvarint(b[n:])
	if w <= 0 {
		return short()
	}
	if w != len(binary.AppendUvarint(nil, l)) {
		return Target{}, 0, fmt.Errorf("%w: length not in its shortest form", ErrInvalidTarget)
	}
	n += w
	if k == KindIDs {
		if l > MaxTargetKey/8 {
			return Target{}, 0, fmt.Errorf("%w: %d ids", ErrInvalidTarget, l)
		}
		l *= 8
	}
	if l > MaxTargetKey {
		return Target{}, 0, fmt.Errorf("%w: name of %d bytes", ErrInvalidTarget, l)
	}
	if uint64(len(b)-n) < l {
		return short()
	}
	t := Target{kind: k, key: string(b[n : n+int(l)])}
	n += int(l)
	if k == KindIP {
		var a netip.Addr
		if a.UnmarshalBinary([]byte(t.key)) != nil || !a.IsValid() {
			return Target{}, 0, fmt.Errorf("%w: bad IP address", ErrInvalidTarget)
		}
		t = IP(a) // canonical: unmapped
	}
	return t, n, nil
}

// ErrInvalidTarget: a target that names no one (the zero Target), one of a
// kind the operation does not take (binding a channel to an IP), or an
// encoding that cannot be decoded.
var ErrInvalidTarget = errors.New("tio: invalid target")
