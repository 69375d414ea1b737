package websocket

import (
	"bytes"
	"context"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

var schemeSep = []byte("://")

// originHost returns the host [":" port] that a serialized origin names, or
// nil. A browser serializes an origin as scheme "://" host [":" port]
// (RFC 6454, section 6.2), with no path, user or second origin; anything
// else ("null", a list) names no host.
func originHost(origin []byte) []byte {
	i := bytes.Index(origin, schemeSep)
	if i <= 0 || !isScheme(origin[:i]) {
		return nil
	}
	h := origin[i+len(schemeSep):]
	if len(h) == 0 || bytes.ContainsAny(h, "/?#@ \t") {
		return nil
	}
	return h
}

// sameOrigin reports whether origin names the server: one of hosts, when
// the server lists its host names, or else host, the request's own.
func sameOrigin(origin, host []byte, hosts []string) bool {
	h := originHost(origin)
	switch {
	case h == nil:
		return false
	case len(hosts) > 0:
		return hostListed(h, hosts)
	}
	return equalFoldASCII(h, host)
}

// hostListed reports whether host is one of hosts.
func hostListed(host []byte, hosts []string) bool {
	for _, h := range hosts {
		if equalFoldASCII(host, h) {
			return true
		}
	}
	return false
}

// listed reports whether origin is in the allowed list.
func listed(origin []byte, allowed []string) bool {
	for _, a := range allowed {
		if a == "*" || equalFoldASCII(origin, a) {
			return true
		}
	}
	return false
}

// refusal is why an upgrade was refused, for the log.
type refusal uint8

const (
	refusedOrigin      refusal = iota // the same-origin rule and Origins
	refusedEmptyOrigin                // an Origin header without a value
	refusedByHook                     // CheckOrigin
	refusedHost                       // Hosts
)

// Limits of the refusal log.
const (
	refusalMemory = 256              // origins and hosts remembered as logged
	refusalBurst  = 10               // lines logged at once
	refusalEvery  = 10 * time.Second // and one more line per period after
	refusalClip   = 200              // bytes of an origin or host shown
)

// refusals logs refused upgrades at INFO, once for each origin or host
// among the last refusalMemory logged, and at most refusalBurst lines at a
// time and one per refusalEvery after that, so that a peer sending a new
// origin per request cannot flood the log. Its memory is fixed: it
// remembers hashes, not the origins. Refusals not logged for the rate
// limit are counted in the next line.
type refusals struct {
	mu      sync.Mutex
	seed    maphash.Seed
	seen    map[uint64]struct{}
	ring    []uint64 // what seen holds, in the order logged
	next    int      // the oldest in ring once it is full
	tokens  int
	last    time.Time // when tokens were last refilled
	dropped uint64    // refusals not logged for the rate limit since the last line
}

// report logs a refusal of kind for value (an origin, or a host for
// refusedHost) on a request for host, unless it was logged already or the
// rate limit says no. It holds its lock only to decide; it runs on an
// event loop, and logs a bounded number of lines.
func (r *refusals) report(l *slog.Logger, kind refusal, value, host []byte) {
	now := time.Now()
	r.mu.Lock()
	if r.seen == nil {
		r.seed = maphash.MakeSeed()
		r.seen = make(map[uint64]struct{}, refusalMemory)
		r.ring = make([]uint64, 0, refusalMemory)
		r.tokens, r.last = refusalBurst, now
	}
	h := maphash.Bytes(r.seed, value) ^ uint64(kind+1)*0x9E3779B97F4A7C15
	if _, ok := r.seen[h]; ok {
		r.mu.Unlock()
		return
	}
	if gained := now.Sub(r.last) / refusalEvery; gained > 0 {
		r.tokens = int(min(refusalBurst, int64(r.tokens)+int64(gained)))
		r.last = r.last.Add(gained * refusalEvery)
	}
	if r.tokens == 0 {
		r.dropped++
		r.mu.Unlock()
		return
	}
	r.tokens--
	if len(r.ring) < refusalMemory {
		r.ring = append(r.ring, h)
	} else {
		delete(r.seen, r.ring[r.next])
		r.ring[r.next] = h
		r.next = (r.next + 1) % refusalMemory
	}
	r.seen[h] = struct{}{}
	dropped := r.dropped
	r.dropped = 0
	r.mu.Unlock()

	v := clip(value)
	attrs := make([]slog.Attr, 0, 4)
	var msg string
	switch kind {
	case refusedOrigin:
		msg = "websocket: refused an upgrade from another origin (403)"
		attrs = append(attrs, slog.String("origin", v), slog.String("host", clip(host)),
			slog.String("allow_with", "websocket.Config.Origins: ["+strconv.Quote(v)+"]"))
	case refusedEmptyOrigin:
		msg = "websocket: refused an upgrade with an empty Origin header (403); no setting allows it"
		attrs = append(attrs, slog.String("host", clip(host)))
	case refusedByHook:
		msg = "websocket: websocket.Config.CheckOrigin refused an upgrade (403)"
		attrs = append(attrs, slog.String("origin", v), slog.String("host", clip(host)),
			slog.String("allow_with", "websocket.Config.CheckOrigin"))
	case refusedHost:
		msg = "websocket: refused an upgrade for a host name not in websocket.Config.Hosts (421); " +
			"list it only if this server answers to that name: an unknown name may be DNS rebinding"
		attrs = append(attrs, slog.String("host", v),
			slog.String("allow_with", "websocket.Config.Hosts: ["+strconv.Quote(v)+"]"))
	}
	if dropped > 0 {
		attrs = append(attrs, slog.Uint64("not_logged", dropped))
	}
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// clip returns b as a string, cut to refusalClip bytes for the log.
func clip(b []byte) string {
	if len(b) > refusalClip {
		return string(b[:refusalClip]) + "…"
	}
	return string(b)
}
