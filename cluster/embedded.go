package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded starts the node's own NATS server.
func (n *Node) startEmbedded() (*server.Server, error) {
	var o server.Options
	if n.cfg.Embedded != nil {
		o = *n.cfg.Embedded
	}
	if n.cfg.Listen != "" {
		host, port, _ := splitListen(n.cfg.Listen) // checked by New
		o.Host, o.Port, o.DontListen = host, port, false
	} else {
		o.DontListen = true // Listen alone decides where clients connect
	}
	if o.ServerName == "" {
		o.ServerName = "tio-" + n.id
	}
	if n.cfg.MaxPayload > 0 {
		o.MaxPayload = n.cfg.MaxPayload
	}
	o.NoSigs = true // the application owns the process's signals
	ns, err := server.NewServer(&o)
	if err != nil {
		return nil, fmt.Errorf("%w: embedded NATS server: %w", ErrConfig, err)
	}
	lg := &natsLogger{l: n.log.With("nats", "embedded"), fatal: make(chan string, 1)}
	ns.SetLoggerV2(lg, false, false, false)
	ns.Start()
	deadline := time.Now().Add(n.cfg.StartTimeout)
	for !ns.ReadyForConnections(20 * time.Millisecond) {
		select {
		case msg := <-lg.fatal:
			ns.Shutdown()
			return nil, fmt.Errorf("cluster: embedded NATS server: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("cluster: embedded NATS server not ready within %v", n.cfg.StartTimeout)
		}
	}
	return ns, nil
}

// stopEmbedded shuts the embedded server down, waiting for it until ctx
// ends.
func stopEmbedded(ctx context.Context, ns *server.Server) error {
	done := make(chan struct{})
	go func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: embedded NATS server shutdown: %w", ctx.Err())
	}
}

// natsLogger adapts slog to nats-server's logger: notices go to Debug
// (a server starting is the node's news, which it logs itself), warnings
// and errors to their levels. Fatalf does not exit: it is logged as an
// error and, during start, fails the start.
type natsLogger struct {
	l     *slog.Logger
	fatal chan string
	once  sync.Once
}

func (g *natsLogger) Noticef(format string, v ...any) { g.log(slog.LevelDebug, format, v) }
func (g *natsLogger) Warnf(format string, v ...any)   { g.log(slog.LevelWarn, format, v) }
func (g *natsLogger) Errorf(format string, v ...any)  { g.log(slog.LevelError, format, v) }
func (g *natsLogger) Debugf(format string, v ...any)  { g.log(slog.LevelDebug, format, v) }
func (g *natsLogger) Tracef(format string, v ...any)  { g.log(slog.LevelDebug, format, v) }
func (g *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	g.l.Error("cluster: nats-server: " + msg)
	g.once.Do(func() { g.fatal <- msg })
}

func (g *natsLogger) log(level slog.Level, format string, v []any) {
	if g.l.Enabled(context.Background(), level) {
		g.l.Log(context.Background(), level, "cluster: nats-server: "+fmt.Sprintf(format, v...))
	}
}
