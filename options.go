package tio

import (
	"log/slog"
	"runtime"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/codec/websocket"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	codecs       []codec.Codec
	fixed        bool
	loops        int
	multicore    bool
	workers      int
	depth        int
	maxOutbound  int
	sniffLimit   int
	logger       *slog.Logger
	hooks        Hooks
	gnetOptions  []gnet.Option
	reusePort    bool
	readBufferCp int
}

func defaultConfig() config {
	return config{
		multicore:   true,
		workers:     8 * runtime.GOMAXPROCS(0),
		depth:       1024,
		maxOutbound: 4 << 20,
		sniffLimit:  64,
		logger:      slog.Default(),
	}
}

// WithCodec fixes the server to one codec: every connection speaks it, and
// nothing is sniffed.
func WithCodec(c codec.Codec) Option {
	return func(o *config) { o.codecs, o.fixed = []codec.Codec{c}, true }
}

// WithCodecs serves several protocols on one port: each connection's codec is
// the first of cs whose Sniff matches the connection's first bytes (each must
// implement codec.Sniffer). The default is a WebSocket codec and a binary
// protocol codec with their default configurations.
func WithCodecs(cs ...codec.Codec) Option {
	return func(o *config) { o.codecs, o.fixed = cs, false }
}

// WithEventLoops sets the number of event loops (default: one per CPU).
func WithEventLoops(n int) Option {
	return func(o *config) { o.loops = n }
}

// WithWorkers sizes the worker pool that runs handlers not declared inline:
// workers goroutines, each with a queue of depth packets. Defaults: 8 per
// CPU, 1024. A connection whose worker queue is full is closed with
// channel.ReasonOverloaded.
func WithWorkers(workers, depth int) Option {
	return func(o *config) { o.workers, o.depth = workers, depth }
}

// WithMaxOutbound sets the per-connection high-water mark of bytes waiting to
// be sent (default 4 MiB). A send past it closes the connection with
// channel.ReasonSlowConsumer. Zero or less disables the limit.
func WithMaxOutbound(bytes int) Option {
	return func(o *config) { o.maxOutbound = bytes }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *config) { o.logger = l }
}

// WithReusePort sets SO_REUSEPORT on the listener.
func WithReusePort(on bool) Option {
	return func(o *config) { o.reusePort = on }
}

// WithGnetOptions passes extra options to the gnet engine. Options that tio
// sets itself (multicore, event loops, logger) may be overridden.
func WithGnetOptions(opts ...gnet.Option) Option {
	return func(o *config) { o.gnetOptions = append(o.gnetOptions, opts...) }
}

// DefaultCodecs returns the codecs a server sniffs when none are given: a
// WebSocket codec and a binary protocol codec, default configurations.
func DefaultCodecs() []codec.Codec {
	return []codec.Codec{websocket.New(websocket.Config{}), binary.New(binary.Config{})}
}
