package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tiogo/tio"
)

// Config configures a Node. The zero Config is a working single node: an
// embedded NATS server inside the process, reachable by this node only,
// relaying every kind of target, with presence. Three fields map onto an
// application's command-line flags:
//
//	-cluster          make a Node (New)
//	-nats-listen ADDR Config.Listen: the embedded server also listens on ADDR, for other nodes
//	-nats URL         Config.URL: join the NATS server(s) at URL instead of embedding one
type Config struct {
	// URL is the NATS server to connect to ("nats://host:4222", several
	// comma-separated for a NATS cluster). Empty: the node embeds a NATS
	// server of its own (nats-server/v2, in this process).
	URL string
	// Listen is the address ("127.0.0.1:4222", ":4222"; port 0 picks a
	// free one, see Node.ClientURL) on which the embedded server accepts
	// other nodes. Empty: it listens nowhere and this node reaches it in
	// process. Listen with URL is a configuration error.
	Listen string
	// Embedded, if set, is the base of the embedded server's options
	// (authorization, TLS, routes to other servers, limits); it is copied.
	// Listen alone decides where it accepts clients (its Host, Port and
	// DontListen are overridden). Ignored with URL.
	Embedded *server.Options
	// NATSOptions are passed to nats.go when connecting, after the node's
	// own (so they win): credentials (nats.UserCredentials, nats.Token,
	// nats.UserInfo, nats.Nkey), TLS (nats.Secure, nats.RootCAs,
	// nats.ClientCert), timeouts, reconnect waits. The node chains its own
	// connection handlers after any set here, and always connects with
	// nats.NoEcho (a node never hears itself).
	NATSOptions []nats.Option

	// NodeID names this node in messages and presence: 1 to MaxNodeID
	// printable bytes, unique in the cluster. Empty: a random id.
	NodeID string
	// Prefix is the first token(s) of every subject ("tio" if empty):
	// clusters sharing a NATS server use different prefixes. Letters,
	// digits, '-', '_' and dots between tokens.
	Prefix string
	// Kinds are the target kinds whose sends and closes go to other nodes
	// (t-io's cluster4user, cluster4group, …). Nil: every kind a relay
	// takes (User, Group, Token, BsID, IP, All). Non-nil and empty: none
	// (presence only). ID and IDs targets are never relayed: a channel id
	// belongs to one server.
	Kinds []tio.TargetKind

	// Heartbeat is how often the node publishes its presence (1 s if zero).
	Heartbeat time.Duration
	// TTL is how long other nodes keep this node's presence after its last
	// heartbeat (5 × Heartbeat if zero); it must be at least twice
	// Heartbeat.
	TTL time.Duration
	// MaxPresenceBytes bounds the memory the node gives the presence of
	// other nodes (512 MiB if zero), charging about twice a user id's length
	// plus 80 bytes for each user online on another node. Entries beyond it
	// are dropped and counted (Stats.PresenceDropped).
	MaxPresenceBytes int64
	// MaxNodes bounds the number of other nodes tracked (1024 if zero).
	MaxNodes int

	// MaxOutbound bounds the bytes of sends and closes accepted by Publish
	// and not yet handed to NATS (8 MiB if zero). Over it Publish fails
	// fast with ErrBackpressure.
	MaxOutbound int
	// PendingMsgs and PendingBytes bound what NATS has delivered to this
	// node and the node has not yet handed to its server (65,536 messages
	// and 64 MiB if zero), for relayed messages and for presence each.
	// Messages over them are dropped by nats.go and counted
	// (Stats.Dropped), like a slow consumer's.
	PendingMsgs  int
	PendingBytes int
	// MaxPayload is the embedded server's largest message (1 MiB if zero;
	// an external server says its own). A send whose message would be
	// larger fails with ErrTooBig.
	MaxPayload int32
	// StartTimeout bounds the embedded server's start and the registration
	// of the node's subscriptions (10 s if zero); dialing NATS is bounded by
	// nats.Timeout (2 s by default; set it in NATSOptions).
	StartTimeout time.Duration
	// Logger receives the node's logs and the embedded server's
	// (slog.Default() if nil).
	Logger *slog.Logger
}

// ErrConfig is wrapped by New's errors for a Config it cannot use.
var ErrConfig = errors.New("cluster: invalid configuration")

const (
	defaultHeartbeat    = time.Second
	defaultTTLBeats     = 5
	defaultMaxPresence  = 512 << 20
	defaultMaxNodes     = 1024
	defaultMaxOutbound  = 8 << 20
	defaultPendingMsgs  = 65536
	defaultPendingBytes = 64 << 20
	defaultStartTimeout = 10 * time.Second
	minTTL              = 10 * time.Millisecond
	maxTTL              = time.Hour
)

// relayedKinds are the kinds a relay takes, in their subjects' order.
var relayedKinds = [...]tio.TargetKind{tio.KindAll, tio.KindUser, tio.KindGroup, tio.KindToken, tio.KindBsID, tio.KindIP}

// check fills in defaults and returns an error wrapping ErrConfig for what
// cannot be used.
func (c *Config) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.URL != "" && c.Listen != "" {
		return bad("Listen (%q) is the embedded server's address, and with URL (%q) no server is embedded", c.Listen, c.URL)
	}
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			return bad("Listen %q: %v", c.Listen, err)
		}
	}
	if c.URL != "" {
		for _, u := range strings.Split(c.URL, ",") {
			if strings.TrimSpace(u) == "" {
				return bad("URL %q has an empty server", c.URL)
			}
		}
	}
	if c.NodeID != "" {
		if err := checkNodeID(c.NodeID); err != nil {
			return bad("NodeID: %v", err)
		}
	}
	if c.Prefix == "" {
		c.Prefix = "tio"
	}
	if err := checkPrefix(c.Prefix); err != nil {
		return bad("Prefix %q: %v", c.Prefix, err)
	}
	if c.Kinds == nil {
		c.Kinds = relayedKinds[:]
	}
	for _, k := range c.Kinds {
		if k != tio.KindAll && (k < tio.KindUser || k > tio.KindIP) {
			return bad("Kinds: %v targets are not relayed", k)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"Heartbeat", &c.Heartbeat}, {"TTL", &c.TTL}, {"StartTimeout", &c.StartTimeout}} {
		if *d.v < 0 {
			return bad("%s %v", d.name, *d.v)
		}
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = defaultHeartbeat
	}
	if c.TTL == 0 {
		c.TTL = defaultTTLBeats * c.Heartbeat
	}
	if c.TTL < 2*c.Heartbeat || c.TTL < minTTL || c.TTL > maxTTL {
		return bad("TTL %v: at least twice Heartbeat (%v), between %v and %v", c.TTL, c.Heartbeat, minTTL, maxTTL)
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = defaultStartTimeout
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxNodes", &c.MaxNodes, defaultMaxNodes},
		{"MaxOutbound", &c.MaxOutbound, defaultMaxOutbound},
		{"PendingMsgs", &c.PendingMsgs, defaultPendingMsgs},
		{"PendingBytes", &c.PendingBytes, defaultPendingBytes},
	} {
		if *f.v < 0 {
			return bad("%s %d", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.MaxPresenceBytes < 0 {
		return bad("MaxPresenceBytes %d", c.MaxPresenceBytes)
	}
	if c.MaxPresenceBytes == 0 {
		c.MaxPresenceBytes = defaultMaxPresence
	}
	if c.MaxPayload < 0 {
		return bad("MaxPayload %d", c.MaxPayload)
	}
	for i, o := range c.NATSOptions {
		if o == nil {
			return bad("NATSOptions[%d] is nil", i)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// splitListen parses Listen into the embedded server's host and port (port
// 0 becomes server.RANDOM_PORT: nats-server reads 0 as its default, 4222).
func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		return host, server.RANDOM_PORT, nil
	}
	return host, int(port), nil
}

func checkNodeID(id string) error {
	if len(id) > MaxNodeID {
		return fmt.Errorf("%d bytes, over %d", len(id), MaxNodeID)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return fmt.Errorf("byte %#x at %d: printable ASCII without spaces only", id[i], i)
		}
	}
	return nil
}

func checkPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return errors.New("an empty token")
		}
		for _, r := range tok {
			ok := r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !ok {
				return fmt.Errorf("%q in a token", r)
			}
		}
	}
	return nil
}
