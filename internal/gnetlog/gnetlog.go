// Package gnetlog adapts log/slog to gnet's logger interface, for the
// server and the client.
package gnetlog

import (
	"context"
	"fmt"
	"log/slog"
)

// Logger is a gnet logger writing to L: gnet's chatter (its Debug and Info)
// goes to Debug, its warnings and errors to Warn and Error, each message
// prefixed "gnet: ".
type Logger struct{ L *slog.Logger }

func (g Logger) Debugf(format string, args ...any) { g.log(slog.LevelDebug, format, args) }
func (g Logger) Infof(format string, args ...any)  { g.log(slog.LevelDebug, format, args) }
func (g Logger) Warnf(format string, args ...any)  { g.log(slog.LevelWarn, format, args) }
func (g Logger) Errorf(format string, args ...any) { g.log(slog.LevelError, format, args) }
func (g Logger) Fatalf(format string, args ...any) { g.log(slog.LevelError, format, args) }

func (g Logger) log(level slog.Level, format string, args []any) {
	if g.L.Enabled(context.Background(), level) {
		g.L.Log(context.Background(), level, "gnet: "+fmt.Sprintf(format, args...))
	}
}
